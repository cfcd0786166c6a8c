// How each member is reached, in headless Chromium against two real nodes
// on loopback: the members panel says "direct" with a round trip beside the
// other node's member, "offline" once that node stops, and nothing beside
// members of our own server; the node panel shows reachability, the port
// mapping line and the addresses worth sharing. It reuses browser_test.go's
// DevTools client:
//
//	go test -run TestBrowserReach -v ./webui/
package webui_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pathOf is a statement list that returns the path text shown beside the
// member whose user ID is id in the members panel ("" if none shows).
func pathOf(id string) string {
	return `const li = [...document.querySelectorAll("#members .member")].find(e => e.querySelector(".mid")?.textContent === ` + jsString(id) + `);
		const p = li?.querySelector(".mpath"); return p && !p.hidden ? p.textContent : ""`
}

func TestBrowserReach(t *testing.T) {
	bin := findChromium(t)
	a := startNode(t)
	b := startNode(t, a.Addrs()...)
	browser := startChromium(t, bin)
	pa := browser.open(t, a.ClaimURL())
	pb := browser.open(t, "http://"+b.HTTPAddr()+"/")
	aliceID := tlClaim(t, pa, "alice", "")
	bobID := tlClaim(t, pb, "bob", b.ClaimCode())

	// The app's own rules, checked in the page: which addresses are worth
	// sharing (the rule of p2p.LinkAddrs), and how a path reads.
	var share [][]string
	pa.evalInto(t, `const { shareableAddrs } = await import("/node.js");
		return [
			shareableAddrs(["/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.5/tcp/4001", "/ip4/81.2.69.160/tcp/4001", "/ip6/2a01:4f8::5/udp/4001/quic-v1", "/ip6/::1/tcp/4001"]),
			shareableAddrs(["/ip4/127.0.0.1/tcp/4001", "/ip4/10.0.0.2/tcp/4001", "/ip6/fe80::1/tcp/4001"]),
			shareableAddrs(["/ip4/127.0.0.1/tcp/4001", "/ip4/81.2.69.161/tcp/4001/p2p/12D3KooWRelay/p2p-circuit"]),
			shareableAddrs(["/ip4/127.0.0.1/tcp/4001"]),
			shareableAddrs([]),
		]`, &share)
	wantShare := [][]string{
		{"/ip4/81.2.69.160/tcp/4001", "/ip6/2a01:4f8::5/udp/4001/quic-v1"},
		{"/ip4/10.0.0.2/tcp/4001"},
		{"/ip4/81.2.69.161/tcp/4001/p2p/12D3KooWRelay/p2p-circuit"},
		{"/ip4/127.0.0.1/tcp/4001"},
		{},
	}
	if got, want := mustJSON(t, share), mustJSON(t, wantShare); got != want {
		t.Errorf("addresses worth sharing: got %s, want %s", got, want)
	}
	var texts []string
	pa.evalInto(t, `const { pathText, shortPeer } = await import("/node.js");
		const name = (p) => p.via_server === "relay.example" ? "Carol" : shortPeer(p.via);
		return [
			pathText({ path: "direct", rtt_ms: 23.4 }, name),
			pathText({ path: "direct", rtt_ms: 0.2 }, name),
			pathText({ path: "direct" }, name),
			pathText({ path: "relayed", via: "12D3KooWAbCdEfGhIjKlMnOp", via_server: "relay.example", rtt_ms: 80 }, name),
			pathText({ path: "relayed", via: "12D3KooWAbCdEfGhIjKlMnOp", via_server: "", rtt_ms: 79.6 }, name),
			pathText({ path: "offline", rtt_ms: 5 }, name),
		]`, &texts)
	wantTexts := []string{"direct · 23 ms", "direct · <1 ms", "direct", "via Carol · 80 ms", "via …IjKlMnOp · 80 ms", "offline"}
	if strings.Join(texts, "|") != strings.Join(wantTexts, "|") {
		t.Errorf("path texts: got %q, want %q", texts, wantTexts)
	}

	// The rest needs a status that says how members are reached.
	for _, k := range []string{"members", "network"} {
		if !statusHas(t, a.HTTPAddr(), k) {
			t.Fatalf("the node's status has no %q: the app has nothing to show", k)
		}
	}

	setName := func(p *page, id, name string) {
		p.eval(t, `const { api } = await import("/api.js"); await api.setDisplayName(`+jsString(id)+`, `+jsString(name)+`)`)
	}
	setName(pa, aliceID, "Alice Liddell")
	setName(pb, bobID, "Bob Builder")
	const room = "Reach test room"
	tlCreateRoom(t, pa, room)
	inviteIn(t, pa, bobID)
	acceptInvite(t, pb, room)

	// Alice's members panel (open at this width) shows Bob as reached
	// directly, then with a round trip once one is measured; nothing beside
	// herself.
	pa.waitFor(t, `return document.querySelector("#members:not([hidden])")`, 5*time.Second)
	start := time.Now()
	pa.waitFor(t, `return /^direct/.test((() => { `+pathOf(bobID)+` })())`, 45*time.Second)
	direct := time.Since(start)
	pa.waitFor(t, `return / · (<1|\d+) ms$/.test((() => { `+pathOf(bobID)+` })())`, 75*time.Second)
	withRTT := time.Since(start)
	var shown string
	pa.evalInto(t, pathOf(bobID), &shown)
	if !regexp.MustCompile(`^direct · (<1|\d+) ms$`).MatchString(shown) {
		t.Errorf("beside bob alice's panel shows %q", shown)
	}
	var own string
	pa.evalInto(t, pathOf(aliceID), &own)
	if own != "" {
		t.Errorf("beside alice herself the panel shows %q, want nothing", own)
	}
	t.Logf("bob shown direct %.1f s after the join; %q after %.1f s", direct.Seconds(), shown, withRTT.Seconds())
	pa.shots(t, "reach-01-members")
	pa.phoneShot(t, "reach-01-members-phone.png", `void 0`)

	// A relay is named by the room member whose server it is, in the
	// members panel and in the node panel's reservations: Bob's page, given
	// a status that says Alice is reached through Alice's own server.
	var relayed []string
	pb.evalInto(t, `const { S, emit } = await import("/state.js");
		const { peerName } = await import("/node.js");
		const alice = `+jsString(aliceID)+`, server = alice.slice(alice.indexOf(":") + 1);
		const saved = S.status;
		S.status = { ...saved, members: [{ server, peer: "12D3KooWAbCdEfGhIjKlMnOp", path: "relayed", via: "12D3KooWAbCdEfGhIjKlMnOp", via_server: server, rtt_ms: 80 }] };
		emit("status");
		const li = [...document.querySelectorAll("#members .member")].find(e => e.querySelector(".mid")?.textContent === alice);
		const text = [li?.querySelector(".mpath")?.textContent, peerName("12D3KooWAbCdEfGhIjKlMnOp"), peerName("12D3KooWSomeoneElse123")];
		S.status = saved; emit("status");
		return text`, &relayed)
	if want := []string{"via Alice Liddell · 80 ms", "Alice Liddell", "…eElse123"}; strings.Join(relayed, "|") != strings.Join(want, "|") {
		t.Errorf("a relay through a member's server and another relay read %q, want %q", relayed, want)
	}

	// The node panel: reachability, the port mapping line, addresses.
	pa.eval(t, `document.getElementById("node-btn").click()`)
	pa.waitFor(t, `return document.querySelector("dialog[open] dl.net")`, 15*time.Second)
	var rows map[string]string
	pa.evalInto(t, `const r = {}; for (const dt of document.querySelectorAll("dialog[open] dl.net dt")) r[dt.textContent] = dt.nextElementSibling.textContent; return r`, &rows)
	for _, k := range []string{"Reachability", "NAT type", "Port mapping", "Relay reservations", "Relay for members", "Public network"} {
		if rows[k] == "" {
			t.Errorf("the node panel has no %q line: %q", k, rows)
		}
	}
	if !regexp.MustCompile(`^(public|private|not known yet)`).MatchString(rows["Reachability"]) {
		t.Errorf("reachability reads %q", rows["Reachability"])
	}
	if !regexp.MustCompile(`^(off|on|mapped|the router)`).MatchString(rows["Port mapping"]) {
		t.Errorf("port mapping reads %q", rows["Port mapping"])
	}
	var addrs []string
	pa.evalInto(t, `return [...document.querySelectorAll("dialog[open] .share-addrs input")].map(i => i.value)`, &addrs)
	if len(addrs) == 0 || !strings.HasPrefix(addrs[0], "/ip4/127.0.0.1/") {
		t.Errorf("addresses worth sharing on a loopback-only node: %q", addrs)
	}
	// The lines follow the status while the panel is open.
	var followed string
	pa.evalInto(t, `const { S, emit } = await import("/state.js");
		const saved = S.status;
		S.status = { ...saved, network: { ...saved.network, reachability: "public" } };
		emit("status");
		const dt = [...document.querySelectorAll("dialog[open] dl.net dt")].find(e => e.textContent === "Reachability");
		const text = dt?.nextElementSibling.textContent;
		S.status = saved; emit("status");
		return text`, &followed)
	if !strings.HasPrefix(followed, "public") {
		t.Errorf("after a status saying public, the open node panel reads %q", followed)
	}
	pa.shots(t, "reach-02-node")
	pa.phoneShot(t, "reach-02-node-phone.png", `void 0`)
	pa.eval(t, `document.querySelector("dialog[open]").close()`)

	// Bob's node stops: Alice's panel says so at her next status poll.
	if err := b.Close(); err != nil {
		t.Logf("closing bob's node: %v", err)
	}
	start = time.Now()
	pa.waitFor(t, `return (() => { `+pathOf(bobID)+` })() === "offline"`, 45*time.Second)
	t.Logf("bob shown offline %.1f s after his node stopped", time.Since(start).Seconds())
	pa.shots(t, "reach-03-offline")
}

// statusHas says whether the node's /_parley/v1/status carries key.
func statusHas(t *testing.T, addr, key string) bool {
	t.Helper()
	res, err := http.Get("http://" + addr + "/_parley/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st map[string]json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	_, ok := st[key]
	return ok
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
