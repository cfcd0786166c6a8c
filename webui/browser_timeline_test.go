// The conversation view in headless Chromium against real nodes: display
// names, replies, edits, reactions, deletes, typing, "seen by", the unread
// line, pictures and files, and how long a room of a thousand rendered
// messages takes to show one more. It reuses browser_test.go's DevTools
// client:
//
//	go test -run 'TestBrowserTimeline|TestBrowserPictures' -v ./webui/
package webui_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// claimAs claims a node in its page: the page opened on the node's claim
// URL (code "") or on its plain URL with the code typed.
func claimAs(t *testing.T, p *page, user, code string) string {
	t.Helper()
	p.waitFor(t, `return document.querySelector("#auth h1")?.textContent === "Claim this node"`, 15*time.Second)
	if code != "" {
		p.eval(t, fmt.Sprintf(`document.querySelector("#auth form").code.value = %q`, code))
	}
	p.eval(t, fmt.Sprintf(`const f = document.querySelector("#auth form");
		f.username.value = %q; f.password.value = "a long password"; f.password2.value = "a long password";
		f.requestSubmit()`, user))
	p.waitFor(t, `return !document.getElementById("app").hidden`, 15*time.Second)
	var id string
	p.evalInto(t, `return JSON.parse(localStorage.getItem("parley.session")).user_id`, &id)
	return id
}

// createRoomIn makes a room through the app's dialog and waits for it to open.
func createRoomIn(t *testing.T, p *page, name string) {
	t.Helper()
	p.eval(t, `document.getElementById("new-room-btn").click()`)
	p.eval(t, `const d = document.querySelector("dialog[open]"); d.querySelector("[name=name]").value = `+jsString(name)+`;
		d.querySelector("form").requestSubmit()`)
	p.waitFor(t, `return document.getElementById("room-name").textContent === `+jsString(name), 15*time.Second)
}

// appendTiming fills the open room's timeline with a thousand messages
// (copies of its last event with new IDs, so only rendering is measured),
// then times, twenty times, adding one more and rendering it as a sync
// would, up to a laid-out page. It returns the times in milliseconds.
func appendTiming(t *testing.T, p *page) []float64 {
	t.Helper()
	var res struct {
		Times, JS []float64
		Built     []int
	}
	p.evalInto(t, `const { S } = await import("/state.js");
		const tl = await import("/timeline.js");
		const r = S.rooms.get(S.current);
		const base = r.events[r.events.length - 1];
		const mk = (i) => ({ ...base, type: "m.room.message", state_key: undefined, event_id: "$filler" + i + "_" + Math.random().toString(36).slice(2),
			sender: i % 3 ? base.sender : "@someone:else", content: { msgtype: "m.text", body: "filler message number " + i },
			origin_server_ts: base.origin_server_ts + i * 1000, unsigned: {} });
		r.addEvents(Array.from({ length: 1000 }, (_, i) => mk(i)));
		tl.renderRoom({ fromSync: true });
		const el = document.getElementById("timeline");
		void el.scrollHeight;
		const times = [], js = [], built = [];
		for (let k = 0; k < 20; k++) {
			const t0 = performance.now();
			r.addEvents([mk(1000 + k)]);
			tl.renderRoom({ fromSync: true });
			const t1 = performance.now();
			void el.scrollHeight;
			times.push(performance.now() - t0);
			js.push(t1 - t0);
			if (tl.renderStats) built.push(tl.renderStats().built);
			await new Promise((res) => requestAnimationFrame(res));
		}
		return { times, js, built }`, &res)
	var n int
	p.evalInto(t, `return document.querySelectorAll("#timeline .msg").length`, &n)
	if n < 1020 {
		t.Errorf("the timeline shows %d messages after adding 1,020", n)
	}
	t.Logf("of which rendering without layout: %s ms; elements built per append: %v", fmtMs(res.JS), res.Built)
	for _, b := range res.Built {
		if b > 2 {
			t.Errorf("appending one message built %d elements, want 1 (2 with a day line)", b)
			break
		}
	}
	return res.Times
}

// TestBrowserTimelineLongRoom reports how long one new message takes to
// show in a room of a thousand rendered ones (reported, not asserted).
func TestBrowserTimelineLongRoom(t *testing.T) {
	bin := findChromium(t)
	a := startNode(t)
	browser := startChromium(t, bin)
	pa := browser.open(t, a.ClaimURL())
	claimAs(t, pa, "alice", "")
	createRoomIn(t, pa, "Long room")
	pa.typeInto(t, "#composer-input", "the first message")
	pa.pressEnter(t)
	pa.waitFor(t, hasMessage("the first message", true), 15*time.Second)
	ms := appendTiming(t, pa)
	sorted := slices.Clone(ms)
	slices.Sort(sorted)
	t.Logf("appending one message to 1,000 rendered: median %.2f ms, max %.2f ms (all: %s)", sorted[len(sorted)/2], sorted[len(sorted)-1], fmtMs(ms))
	// The made-up events are not the node's: a read receipt for one may
	// be refused, which is no error of the page.
	var errs []string
	for _, e := range pa.errors() {
		if !strings.Contains(e, "/receipt/") && !strings.Contains(e, "status of 404") {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

func fmtMs(ms []float64) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%.1f", m)
	}
	return strings.Join(s, " ")
}
