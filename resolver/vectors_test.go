package resolver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// The vectors in testdata/stateres come from the ruma project (MIT, see
// testdata/stateres/LICENSE-ruma); testdata/stateres/README.md describes
// them and the modes they run in.
const vectorDir = "testdata/stateres"

type vectorCase struct {
	Name      string   `json:"name"`
	Mode      string   `json:"mode"`
	PDUs      []string `json:"pdus"`
	StateMaps []string `json:"state_maps"`
}

type snapshotEntry struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	EventID  string          `json:"event_id"`
	Content  json.RawMessage `json:"content"`
}

// fixture is the PDUs of one case, file by file, with their room version.
type fixture struct {
	version string
	batches [][]*rooms.Event
	byID    map[string]*rooms.Event
}

func (f *fixture) fetch(id string) (*rooms.Event, error) {
	if e, ok := f.byID[id]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("unknown event %s", id)
}

func (f *fixture) all() []*rooms.Event { return slices.Concat(f.batches...) }

// fixtureVersion maps the create event's room_version to the rules used.
func fixtureVersion(t *testing.T, v string) string {
	switch v {
	case rooms.V10:
		return rooms.V10
	case rooms.V11:
		return rooms.V11
	case rooms.V12:
		return rooms.V12
	}
	t.Fatalf("fixture room version %q not supported", v)
	return ""
}

func loadFixture(t *testing.T, files []string) *fixture {
	t.Helper()
	f := &fixture{byID: make(map[string]*rooms.Event)}
	for _, name := range files {
		var raws []json.RawMessage
		readJSON(t, filepath.Join(vectorDir, "fixtures", name), &raws)
		var batch []*rooms.Event
		for _, raw := range raws {
			var head struct {
				EventID string `json:"event_id"`
				Type    string `json:"type"`
				Content struct {
					RoomVersion string `json:"room_version"`
				} `json:"content"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if f.version == "" {
				if head.Type != typeCreate {
					t.Fatalf("%s: first PDU is %s, want a create event", name, head.Type)
				}
				f.version = fixtureVersion(t, head.Content.RoomVersion)
			}
			e, err := rooms.ParseEventWithID(raw, f.version, head.EventID)
			if err != nil {
				t.Fatalf("%s: parse %s: %v", name, head.EventID, err)
			}
			f.byID[e.ID()] = e
			batch = append(batch, e)
		}
		f.batches = append(f.batches, batch)
	}
	return f
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestVectors(t *testing.T) {
	var cases []vectorCase
	readJSON(t, filepath.Join(vectorDir, "cases.json"), &cases)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			f := loadFixture(t, c.PDUs)
			var snap []snapshotEntry
			readJSON(t, filepath.Join(vectorDir, "snapshots", c.Name+".json"), &snap)
			want := make(StateMap, len(snap))
			for _, s := range snap {
				want[rooms.StateKey{Type: s.Type, StateKey: s.StateKey}] = s.EventID
				checkContent(t, f, s)
			}
			modes := map[string]func(*testing.T, *fixture, vectorCase) StateMap{}
			switch c.Mode {
			case "batches":
				modes["iterative"] = resolveIteratively
				modes["batched"] = resolveBatched
				modes["atomic"] = resolveAtomically
			case "state_maps":
				modes["state_maps"] = resolveStateMaps
			default:
				t.Fatalf("unknown mode %q", c.Mode)
			}
			for _, name := range slices.Sorted(maps.Keys(modes)) {
				t.Run(name, func(t *testing.T) {
					got := modes[name](t, f, c)
					if diff := diffStates(f, got, want); diff != "" {
						t.Errorf("resolved state differs from the snapshot (- got, + want):\n%s", diff)
					}
				})
			}
		})
	}
}

// checkContent checks that the snapshot's content is the event's, so that a
// snapshot cannot name a different event than it shows.
func checkContent(t *testing.T, f *fixture, s snapshotEntry) {
	t.Helper()
	e, ok := f.byID[s.EventID]
	if !ok {
		t.Fatalf("snapshot names unknown event %s", s.EventID)
	}
	want, err := rooms.CanonicalJSON(s.Content)
	if err != nil {
		t.Fatalf("snapshot content of %s: %v", s.EventID, err)
	}
	if !bytes.Equal(e.Content(), want) {
		t.Errorf("snapshot content of %s is %s, event has %s", s.EventID, want, e.Content())
	}
}

func single(e *rooms.Event) StateMap { return StateMap{e.Key(): e.ID()} }

func mustResolve(t *testing.T, f *fixture, sets []StateMap) StateMap {
	t.Helper()
	s, err := Resolve(f.version, sets, f.fetch)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return s
}

// resolveIteratively walks the DAG along prev_events from the create event.
// The state before a PDU is the resolution of the states after its prev
// events; the state after it is the resolution of the state before and the
// state before with the PDU applied, which drops the PDU if it fails auth.
func resolveIteratively(t *testing.T, f *fixture, _ vectorCase) StateMap {
	after := make(map[string]StateMap)
	named := make(map[string]bool)
	for _, e := range topoOrder(t, f.all()) {
		var before []StateMap
		for _, p := range e.PrevEvents() {
			before = append(before, after[p])
			named[p] = true
		}
		state := mustResolve(t, f, before)
		proposed := maps.Clone(state)
		proposed[e.Key()] = e.ID()
		after[e.ID()] = mustResolve(t, f, []StateMap{state, proposed})
	}
	var leaves []StateMap
	for _, e := range f.all() {
		if !named[e.ID()] {
			leaves = append(leaves, after[e.ID()])
		}
	}
	return mustResolve(t, f, leaves)
}

// topoOrder sorts events so that each follows its prev events.
func topoOrder(t *testing.T, events []*rooms.Event) []*rooms.Event {
	t.Helper()
	done := make(map[string]bool)
	var out []*rooms.Event
	for len(out) < len(events) {
		progress := false
		for _, e := range events {
			if done[e.ID()] {
				continue
			}
			ready := true
			for _, p := range e.PrevEvents() {
				ready = ready && done[p]
			}
			if ready {
				done[e.ID()] = true
				out = append(out, e)
				progress = true
			}
		}
		if !progress {
			t.Fatal("prev_events name PDUs that are not in the fixture")
		}
	}
	return out
}

// resolveBatched resolves file by file: the previous result plus one
// single-entry state map per PDU of the file.
func resolveBatched(t *testing.T, f *fixture, _ vectorCase) StateMap {
	var state StateMap
	for _, batch := range f.batches {
		var sets []StateMap
		if state != nil {
			sets = append(sets, state)
		}
		for _, e := range batch {
			sets = append(sets, single(e))
		}
		state = mustResolve(t, f, sets)
	}
	return state
}

// resolveAtomically resolves one single-entry state map per PDU at once.
func resolveAtomically(t *testing.T, f *fixture, _ vectorCase) StateMap {
	var sets []StateMap
	for _, e := range f.all() {
		sets = append(sets, single(e))
	}
	return mustResolve(t, f, sets)
}

// resolveStateMaps resolves the state sets the case lists by event ID.
func resolveStateMaps(t *testing.T, f *fixture, c vectorCase) StateMap {
	var sets []StateMap
	for _, name := range c.StateMaps {
		var ids []string
		readJSON(t, filepath.Join(vectorDir, "fixtures", name), &ids)
		set := make(StateMap, len(ids))
		for _, id := range ids {
			e, ok := f.byID[id]
			if !ok {
				t.Fatalf("%s names unknown event %s", name, id)
			}
			set[e.Key()] = id
		}
		sets = append(sets, set)
	}
	return mustResolve(t, f, sets)
}

// diffStates lists the entries of got and want that differ, "" if none.
func diffStates(f *fixture, got, want StateMap) string {
	keys := slices.Collect(maps.Keys(got))
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b rooms.StateKey) int {
		return strings.Compare(a.Type+"\x00"+a.StateKey, b.Type+"\x00"+b.StateKey)
	})
	var sb strings.Builder
	show := func(sign string, k rooms.StateKey, id string) {
		content := ""
		if e, ok := f.byID[id]; ok {
			content = string(e.Content())
		}
		fmt.Fprintf(&sb, "%s (%s, %q) %s %s\n", sign, k.Type, k.StateKey, id, content)
	}
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if gok && wok && g == w {
			continue
		}
		if gok {
			show("-", k, g)
		}
		if wok {
			show("+", k, w)
		}
	}
	return sb.String()
}
