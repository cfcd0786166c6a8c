package client

import (
	"encoding/json"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// TestUpgradePowerLevels: the new room's power levels, first and final,
// from the old room's.
func TestUpgradePowerLevels(t *testing.T) {
	const alice, bob = "@alice:a", "@bob:b"
	tests := []struct {
		name, content, version string
		oldLevel               int64
		additional             []string
		first, final           string
	}{
		{"an admin at the top stays as they are", `{"users":{"@alice:a":100,"@bob:b":50},"ban":50}`, rooms.V11, 100, nil,
			`{"ban":50,"users":{"@alice:a":100,"@bob:b":50}}`, `{"ban":50,"users":{"@alice:a":100,"@bob:b":50}}`},
		{"a moderator who may send the tombstone is lifted to the highest level, then put back",
			`{"events":{"m.room.tombstone":50,"m.room.power_levels":150},"users":{"@alice:a":50}}`, rooms.V10, 50, nil,
			`{"events":{"m.room.power_levels":150,"m.room.tombstone":50},"users":{"@alice:a":150}}`,
			`{"events":{"m.room.power_levels":150,"m.room.tombstone":50},"users":{"@alice:a":50}}`},
		{"someone above the upgrader lifts them to that level", `{"users":{"@alice:a":100,"@bob:b":120}}`, rooms.V11, 100, nil,
			`{"users":{"@alice:a":120,"@bob:b":120}}`, `{"users":{"@alice:a":100,"@bob:b":120}}`},
		{"a v12 creator keeps the lifted level in a v11 room", `{"users":{"@bob:b":50}}`, rooms.V11, rooms.CreatorLevel, nil,
			`{"users":{"@alice:a":100,"@bob:b":50}}`, `{"users":{"@alice:a":100,"@bob:b":50}}`},
		{"no power levels at all give the upgrader 100", ``, rooms.V11, 100, nil,
			`{"users":{"@alice:a":100}}`, `{"users":{"@alice:a":100}}`},
		{"in v12 the creators are not listed", `{"users":{"@alice:a":100,"@bob:b":100,"@carol:c":50}}`, rooms.V12, 100, []string{bob},
			`{"users":{"@carol:c":50}}`, `{"users":{"@carol:c":50}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var content json.RawMessage
			if tt.content != "" {
				content = json.RawMessage(tt.content)
			}
			first, final, err := upgradePowerLevels(content, tt.oldLevel, alice, tt.version, tt.additional)
			if err != nil {
				t.Fatal(err)
			}
			if string(first) != tt.first || string(final) != tt.final {
				t.Errorf("got\n first %s\n final %s\nwant\n first %s\n final %s", first, final, tt.first, tt.final)
			}
		})
	}
}

// TestWithLevels: the old room's events_default and invite are raised,
// never lowered.
func TestWithLevels(t *testing.T) {
	tests := []struct {
		name, content, want string
		changed             bool
	}{
		{"defaults are raised", `{"users":{}}`, `{"events_default":50,"invite":50,"users":{}}`, true},
		{"lower values are raised", `{"events_default":0,"invite":10}`, `{"events_default":50,"invite":50}`, true},
		{"higher values stay", `{"events_default":75,"invite":60}`, `{"events_default":75,"invite":60}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := withLevels(json.RawMessage(tt.content), 50, "events_default", "invite")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want || changed != tt.changed {
				t.Errorf("got %s (changed %v), want %s (changed %v)", got, changed, tt.want, tt.changed)
			}
		})
	}
}
