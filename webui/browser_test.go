// The browser test drives the bundled web app in headless Chromium against
// three real nodes: claim each node, create a room, invite by user ID and
// accept, invite with a link and join with it, see messages arrive live
// both ways, check each other's safety numbers behind the room's lock (and
// a join with a link taken in person verifies its maker), and scroll back
// through a hundred messages of history. It also runs the QR encoder's
// self-check in the page. It speaks the Chrome
// DevTools protocol itself (over gorilla/websocket, already in the module
// graph), so it needs only a Chromium binary:
//
//	go test -run TestBrowser -v ./webui/
//
// PARLEY_CHROMIUM names the binary (default: chromium, chromium-browser or
// google-chrome on PATH); without one the test is skipped, or fails when CI
// is set. PARLEY_SCREENSHOTS names a folder for screenshots, each taken in
// the light and the dark colour scheme.
package webui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/parley-p2p/parley/node"
)

const roomName = "Browser test room"

func TestBrowser(t *testing.T) {
	bin := findChromium(t)
	a := startNode(t)
	b := startNode(t, a.Addrs()...)
	c := startNode(t, a.Addrs()...)
	browser := startChromium(t, bin)

	pa := browser.open(t, a.ClaimURL()) // the URL parley run prints
	pb := browser.open(t, "http://"+b.HTTPAddr()+"/")
	pc := browser.open(t, "http://"+c.HTTPAddr()+"/")
	pages := map[string]*page{"alice": pa, "bob": pb, "carol": pc}

	// The QR encoder reads its own codes back (format, masks, blocks,
	// Reed-Solomon syndromes) for texts up to a 640-character link.
	var failures []string
	pa.evalInto(t, `return (await import("/qr.js")).qrSelfCheck()`, &failures)
	if len(failures) > 0 {
		t.Fatalf("QR self-check: %v", failures)
	}

	claimed := func(p *page) {
		p.waitFor(t, `return document.querySelector("#auth h1")?.textContent === "Claim this node"`, 15*time.Second)
	}
	// Alice's page came with the claim code in its URL; Bob and Carol type
	// theirs.
	claim := func(p *page, user, code string) {
		claimed(p)
		if code != "" {
			p.eval(t, fmt.Sprintf(`document.querySelector("#auth form").code.value = %q`, code))
		}
		p.eval(t, fmt.Sprintf(`const f = document.querySelector("#auth form");
			f.username.value = %q; f.password.value = "a long password"; f.password2.value = "a long password";
			f.requestSubmit()`, user))
		p.waitFor(t, `return !document.getElementById("app").hidden`, 15*time.Second)
	}
	claimed(pa)
	pa.shots(t, "01-claim")
	claim(pa, "alice", "")
	claim(pb, "bob", b.ClaimCode())
	claim(pc, "carol", c.ClaimCode())
	var leftover string
	pa.evalInto(t, `return location.hash`, &leftover)
	if strings.Contains(leftover, "claim") {
		t.Errorf("the spent claim code stays in the URL: %q", leftover)
	}
	var bobID string
	pb.evalInto(t, `return JSON.parse(localStorage.getItem("parley.session")).user_id`, &bobID)
	if !strings.HasPrefix(bobID, "@bob:") {
		t.Fatalf("bob's user ID is %q", bobID)
	}

	// Alice creates a room.
	pa.eval(t, `document.getElementById("new-room-btn").click()`)
	pa.eval(t, `const d = document.querySelector("dialog[open]"); d.querySelector("[name=name]").value = "`+roomName+`";
		d.querySelector("[name=topic]").value = "made by browser_test.go"; d.querySelector("form").requestSubmit()`)
	pa.waitFor(t, `return document.getElementById("room-name").textContent === "`+roomName+`"`, 15*time.Second)

	// She invites Bob by his user ID; he accepts in his room list.
	pa.eval(t, `document.getElementById("invite-btn").click()`)
	pa.waitFor(t, `return document.querySelector("dialog[open] [name=user]")`, 5*time.Second)
	pa.eval(t, fmt.Sprintf(`document.querySelector("dialog[open] [name=user]").value = %q;
		document.querySelector("dialog[open] form").requestSubmit()`, bobID))
	pa.waitFor(t, `return !document.querySelector("dialog[open]")`, 15*time.Second)
	const inviteItem = `[...document.querySelectorAll("#room-list .invite-item")].find(e => e.querySelector("strong")?.textContent === "` + roomName + `")`
	pb.waitFor(t, `return `+inviteItem, 30*time.Second)
	pb.shots(t, "02-room-list")
	pb.eval(t, `[...`+inviteItem+`.querySelectorAll("button")].find(b => b.textContent === "Accept").click()`)
	pb.waitFor(t, `return document.getElementById("room-name").textContent === "`+roomName+`"`, 30*time.Second)
	pa.waitFor(t, `return [...document.querySelectorAll("#members .member")].some(e => e.textContent.includes("bob") && !e.closest("ul").previousElementSibling?.textContent.startsWith("Invited"))`, 30*time.Second)

	// An invite link, with its QR code.
	pa.eval(t, `document.getElementById("link-btn").click()`)
	pa.eval(t, `document.querySelector("dialog[open] form").requestSubmit()`)
	pa.waitFor(t, `return document.querySelector("dialog[open] svg.qr")`, 15*time.Second)
	var links []string
	pa.evalInto(t, `return [...document.querySelectorAll("dialog[open] .copy-row input")].map(i => i.value)`, &links)
	if len(links) < 2 || !strings.HasPrefix(links[0], "parley:join/") || !strings.Contains(links[1], "/#/join/") {
		t.Fatalf("link dialog shows %q", links)
	}
	pa.shots(t, "04-link-dialog")
	pa.eval(t, `document.querySelector("dialog[open]").close()`)

	// Carol pastes the link into her "Join with a link" dialog.
	pc.eval(t, `document.getElementById("join-link-btn").click()`)
	pc.waitFor(t, `return document.querySelector("dialog[open] #join-link")`, 5*time.Second)
	pc.typeInto(t, "dialog[open] #join-link", links[0])
	pc.waitFor(t, `return document.querySelector("dialog[open] #join-link").value === `+jsString(links[0]), 5*time.Second)
	// The link names its maker; Carol got it from Alice in person.
	var aliceID string
	pa.evalInto(t, `return JSON.parse(localStorage.getItem("parley.session")).user_id`, &aliceID)
	pc.waitFor(t, `const f = document.querySelector("dialog[open] fieldset.in-person");
		return f && !f.hidden && f.querySelector("legend").textContent.includes(`+jsString(aliceID)+`)`, 5*time.Second)
	pc.eval(t, `document.querySelector('dialog[open] fieldset.in-person input[value="yes"]').click()`)
	pc.shots(t, "07-join-in-person")
	pc.pressEnter(t)
	pc.waitFor(t, `return document.getElementById("room-name").textContent === "`+roomName+`"`, 60*time.Second)
	pc.waitFor(t, `return !document.querySelector("dialog[open]")`, 5*time.Second)

	// Alice writes; Bob and Carol see it arrive over their /sync long-polls.
	pa.typeInto(t, "#composer-input", "hello from alice")
	pa.pressEnter(t)
	pa.waitFor(t, hasMessage("hello from alice", true), 15*time.Second)
	pb.waitFor(t, hasMessage("hello from alice", false), 30*time.Second)
	pc.waitFor(t, hasMessage("hello from alice", false), 30*time.Second)

	// Carol answers; Alice sees it live.
	pc.typeInto(t, "#composer-input", "hi from carol")
	pc.pressEnter(t)
	pc.waitFor(t, hasMessage("hi from carol", true), 30*time.Second)
	pa.waitFor(t, hasMessage("hi from carol", false), 30*time.Second)
	pa.waitFor(t, `return [...document.querySelectorAll("#members .member")].some(e => e.textContent.includes("carol"))`, 15*time.Second)
	pa.shots(t, "03-room")

	checkEncryption(t, pa, pb, pc, aliceID, bobID)

	// The node panel shows the identity with a QR code.
	pa.eval(t, `document.getElementById("node-btn").click()`)
	pa.waitFor(t, `return document.querySelector("dialog[open] svg.qr")`, 15*time.Second)
	pa.shots(t, "05-node")
	pa.eval(t, `document.querySelector("dialog[open]").close()`)
	// On a phone the members panel covers the room: close it first.
	pa.phoneShot(t, "06-phone.png", `document.querySelector('#members [aria-label="Close members"]')?.click()`)

	// History: a hundred messages straight through the Matrix API, then
	// Bob reloads and scrolls back to the first of them.
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	pa.evalInto(t, `return JSON.parse(localStorage.getItem("parley.session"))`, &sess)
	var roomID string
	pa.evalInto(t, `return decodeURIComponent(location.hash.slice("#/room/".length))`, &roomID)
	if sess.AccessToken == "" || !strings.HasPrefix(roomID, "!") {
		t.Fatalf("token %q, room %q", sess.AccessToken, roomID)
	}
	var want []string
	for i := 1; i <= 100; i++ {
		body := fmt.Sprintf("history %03d", i)
		want = append(want, body)
		sendMessage(t, a.HTTPAddr(), sess.AccessToken, roomID, fmt.Sprintf("hist%d", i), body)
	}
	pb.waitFor(t, hasMessage("history 100", false), 30*time.Second)
	pb.eval(t, `location.hash = "#/"; window.beforeReload = true`)
	pb.call(t, "Page.reload", map[string]any{}, nil)
	pb.waitFor(t, `return !window.beforeReload && document.readyState === "complete" && !document.getElementById("app").hidden`, 15*time.Second)
	pb.waitFor(t, `const b = [...document.querySelectorAll("#room-list .room-item")].find(b => b.querySelector(".rname")?.textContent === "`+roomName+`");
		b?.click(); return b`, 15*time.Second)
	pb.waitFor(t, `return document.getElementById("room-name").textContent === "`+roomName+`" && !document.getElementById("timeline").hidden`, 15*time.Second)
	var before int
	pb.evalInto(t, `return [...document.querySelectorAll("#timeline .msg .body")].filter(e => /^history \d+$/.test(e.textContent)).length`, &before)
	t.Logf("after the reload, bob's timeline shows %d of the 100; scrolling back", before)
	pb.waitFor(t, `const tl = document.getElementById("timeline"); tl.scrollTop = 0;
		return [...tl.querySelectorAll(".msg .body")].some(e => e.textContent === "history 001")`, 30*time.Second)
	var got []string
	pb.evalInto(t, `return [...document.querySelectorAll("#timeline .msg .body")].map(e => e.textContent).filter(s => /^history \d+$/.test(s))`, &got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bob's timeline shows %d history messages, want 100 in order: %q", len(got), got)
	}

	// Carol reloads while on the room's URL: the app opens that room
	// again, with its room list and without losing contact.
	var hash string
	pc.evalInto(t, `window.beforeReload = true; return location.hash`, &hash)
	if !strings.HasPrefix(hash, "#/room/") {
		t.Fatalf("carol's page is at %q, want a room URL", hash)
	}
	pc.call(t, "Page.reload", map[string]any{}, nil)
	pc.waitFor(t, `return !window.beforeReload && document.readyState === "complete" && !document.getElementById("app").hidden`, 15*time.Second)
	pc.waitFor(t, `return document.getElementById("room-name").textContent === "`+roomName+`" && !document.getElementById("timeline").hidden &&
		[...document.querySelectorAll("#room-list .room-item .rname")].some(e => e.textContent === "`+roomName+`")`, 15*time.Second)
	pc.waitFor(t, hasMessage("history 100", false), 15*time.Second)
	var banner string
	pc.evalInto(t, `const b = document.getElementById("banner"); return b.hidden ? "" : b.textContent`, &banner)
	if strings.Contains(banner, "Lost contact") {
		t.Errorf("after a reload on the room's URL carol's banner says %q", banner)
	}

	// Carol invites Bob to another room; Bob, who owns his node, blocks
	// her server from his invite list: the invite goes, and the block is
	// on his node's list.
	const spamRoom = "Not a spam room"
	pc.eval(t, `document.getElementById("new-room-btn").click()`)
	pc.eval(t, `const d = document.querySelector("dialog[open]"); d.querySelector("[name=name]").value = "`+spamRoom+`";
		d.querySelector("form").requestSubmit()`)
	pc.waitFor(t, `return document.getElementById("room-name").textContent === "`+spamRoom+`"`, 15*time.Second)
	pc.eval(t, `document.getElementById("invite-btn").click()`)
	pc.waitFor(t, `return document.querySelector("dialog[open] [name=user]")`, 5*time.Second)
	pc.eval(t, fmt.Sprintf(`document.querySelector("dialog[open] [name=user]").value = %q;
		document.querySelector("dialog[open] form").requestSubmit()`, bobID))
	pc.waitFor(t, `return !document.querySelector("dialog[open]")`, 15*time.Second)
	spamInvite := `[...document.querySelectorAll("#room-list .invite-item")].find(e => e.querySelector("strong")?.textContent === "` + spamRoom + `")`
	pb.waitFor(t, `return `+spamInvite, 30*time.Second)
	pb.eval(t, `[...`+spamInvite+`.querySelectorAll("button")].find(b => b.textContent === "Block server").click()`)
	pb.waitFor(t, `return !`+spamInvite, 15*time.Second)
	var blocked []string
	pb.evalInto(t, `const s = JSON.parse(localStorage.getItem("parley.session"));
		return fetch("/_parley/v1/blocked_servers", { headers: { Authorization: "Bearer " + s.access_token } })
			.then(r => r.json()).then(j => j.servers)`, &blocked)
	if len(blocked) != 1 || blocked[0] != c.ServerName() {
		t.Errorf("bob's node blocks %q, want only carol's server %s", blocked, c.ServerName())
	}

	for name, p := range pages {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors:\n%s", name, strings.Join(errs, "\n"))
		}
	}
}

// checkEncryption: every member sees the room's lock; Alice and Bob each
// open it and see the same safety number for the other, the one the API
// gives, with a QR code that reads back as the pair's verify text; Alice
// marks Bob verified and her members panel says so; Carol, who took her
// link from Alice in person, sees Alice verified "via link".
func checkEncryption(t *testing.T, pa, pb, pc *page, aliceID, bobID string) {
	t.Helper()
	for _, p := range []*page{pa, pb, pc} {
		p.waitFor(t, `const b = document.getElementById("e2ee-btn"); return b && b.offsetParent !== null && /encrypted/i.test(b.getAttribute("aria-label"))`, 5*time.Second)
	}
	// safetyShown opens the lock's dialog and returns the safety number and
	// the QR code's text it shows for a member.
	safetyShown := func(p *page, member string) (number, qrText string) {
		p.eval(t, `document.getElementById("e2ee-btn").click()`)
		details := `[...document.querySelectorAll("dialog[open] details.e2ee-member")].find(d => d.dataset.user === ` + jsString(member) + `)`
		p.waitFor(t, `const d = `+details+`; if (d) d.open = true; return d?.querySelector(".safety-number")`, 15*time.Second)
		var got struct{ Number, QR string }
		p.evalInto(t, `const d = `+details+`;
			const svg = d.querySelector("svg.qr");
			const n = svg.viewBox.baseVal.width - 8;
			const modules = Array.from({ length: n }, () => new Array(n).fill(false));
			for (const [, x, y] of svg.querySelector("path").getAttribute("d").matchAll(/M(\d+) (\d+)/g)) modules[y - 4][x - 4] = true;
			const { decodeQR } = await import("/qr.js");
			return { Number: d.querySelector(".safety-number").textContent, QR: new TextDecoder().decode(decodeQR(modules).bytes) }`, &got)
		return got.Number, got.QR
	}
	bobOnA, qrOnA := safetyShown(pa, bobID)
	pa.shots(t, "08-safety-number")
	aliceOnB, qrOnB := safetyShown(pb, aliceID)
	if !regexp.MustCompile(`^\d{5}( \d{5}){11}$`).MatchString(bobOnA) {
		t.Errorf("alice's page shows bob's safety number as %q, want 12 groups of 5 digits", bobOnA)
	}
	if bobOnA != aliceOnB {
		t.Errorf("alice's page shows %q for bob, bob's shows %q for alice: not the same number", bobOnA, aliceOnB)
	}
	var api string
	pa.evalInto(t, `const s = JSON.parse(localStorage.getItem("parley.session"));
		const room = decodeURIComponent(location.hash.slice("#/room/".length));
		const j = await fetch("/_parley/v1/rooms/" + encodeURIComponent(room) + "/e2ee", { headers: { Authorization: "Bearer " + s.access_token } }).then(r => r.json());
		return j.members.find(m => m.user_id === `+jsString(bobID)+`).safety_number`, &api)
	if api != bobOnA {
		t.Errorf("alice's page shows %q for bob, her node's API says %q", bobOnA, api)
	}
	servers := []string{aliceID[strings.Index(aliceID, ":")+1:], bobID[strings.Index(bobID, ":")+1:]}
	slices.Sort(servers)
	if want := "parley:verify/1/" + servers[0] + "/" + servers[1]; qrOnA != want || qrOnB != want {
		t.Errorf("the QR codes read %q on alice's page and %q on bob's, want %q", qrOnA, qrOnB, want)
	}
	pb.eval(t, `document.querySelector("dialog[open]").close()`)

	// Alice marks Bob verified, by the number they compared.
	bobItem := `[...document.querySelectorAll("#members .member")].find(e => e.textContent.includes(` + jsString(bobID) + `))`
	if pa.evalBool(t, `return !!`+bobItem+`?.querySelector(".verified")`) {
		t.Errorf("bob is marked verified in alice's members panel before she checked")
	}
	pa.eval(t, `const d = [...document.querySelectorAll("dialog[open] details.e2ee-member")].find(d => d.dataset.user === `+jsString(bobID)+`);
		[...d.querySelectorAll("button")].find(b => b.textContent === "Mark as verified").click()`)
	pa.waitFor(t, `const d = [...document.querySelectorAll("dialog[open] details.e2ee-member")].find(d => d.dataset.user === `+jsString(bobID)+`);
		return d?.querySelector("summary .verified") && [...d.querySelectorAll("button")].some(b => b.textContent === "Unverify")`, 15*time.Second)
	pa.eval(t, `document.querySelector("dialog[open]").close()`)
	pa.waitFor(t, `return `+bobItem+`?.querySelector(".verified")`, 15*time.Second)
	pa.shots(t, "09-verified")

	// Bob's members panel opens Alice's dialog, with the same number.
	pb.eval(t, `[...document.querySelectorAll("#members .member")].find(e => e.textContent.includes(`+jsString(aliceID)+`)).click()`)
	pb.waitFor(t, `return document.querySelector("dialog[open] .safety-number")?.textContent === `+jsString(aliceOnB), 15*time.Second)
	pb.eval(t, `document.querySelector("dialog[open]").close()`)

	// Carol took her link from Alice in person.
	aliceItem := `[...document.querySelectorAll("#members .member")].find(e => e.textContent.includes(` + jsString(aliceID) + `))`
	pc.waitFor(t, `return `+aliceItem+`?.querySelector(".verified")?.title.includes("in person")`, 15*time.Second)
}

// hasMessage is a condition: the timeline shows a message with this body
// (if sent, one the node has accepted).
func hasMessage(body string, sent bool) string {
	sel := "#timeline .msg .body"
	if sent {
		sel = "#timeline .msg:not(.pending) .body"
	}
	return fmt.Sprintf(`return [...document.querySelectorAll(%q)].some(e => e.textContent === %s)`, sel, jsString(body))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sendMessage(t *testing.T, addr, token, roomID, txn, body string) {
	t.Helper()
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+txn, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var buf bytes.Buffer
		buf.ReadFrom(res.Body)
		t.Fatalf("send %q: %s %s", body, res.Status, buf.String())
	}
}

func findChromium(t *testing.T) string {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("headless Chromium not found, and CI is set: install Debian's chromium package (apt-get install chromium) or set PARLEY_CHROMIUM")
	}
	t.Skip("headless Chromium not found: apt-get install chromium (Debian's package), or set PARLEY_CHROMIUM")
	return ""
}

func startNode(t *testing.T, bootstrap ...string) *node.Node {
	t.Helper()
	n, err := node.New(node.Config{
		DataDir:     t.TempDir(),
		HTTPAddr:    "127.0.0.1:0",
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap:   bootstrap,
		NoMDNS:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// ---- a minimal DevTools protocol client ----

type chromium struct {
	base string // http://127.0.0.1:port
}

func startChromium(t *testing.T, bin string) *chromium {
	t.Helper()
	profile, err := os.MkdirTemp("", "parley-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--no-first-run",
		"--disable-dev-shm-usage", "--remote-debugging-port=0", "--user-data-dir="+profile,
		"--window-size=1280,800", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		// Chromium's helper processes may still be writing for a moment.
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case hostport := <-found:
		return &chromium{base: "http://" + hostport}
	case <-time.After(30 * time.Second):
		t.Fatal("Chromium did not start")
		return nil
	}
}

type page struct {
	conn    *websocket.Conn
	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpReply
	logged  []string
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error"`
}

func (c *chromium) open(t *testing.T, url string) *page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, c.base+"/json/new?about:blank", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var target struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(res.Body).Decode(&target); err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(target.WebSocketDebuggerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &page{conn: conn, waiting: map[int]chan cdpReply{}}
	t.Cleanup(func() { conn.Close() })
	go p.read()
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		p.call(t, m, nil, nil)
	}
	// Both pages share one browser: let each keep focus (and key input)
	// while the other is in front.
	p.call(t, "Emulation.setFocusEmulationEnabled", map[string]any{"enabled": true}, nil)
	p.navigate(t, url)
	return p
}

func (p *page) read() {
	for {
		var msg struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if err := p.conn.ReadJSON(&msg); err != nil {
			return
		}
		p.mu.Lock()
		if msg.ID != 0 {
			if ch := p.waiting[msg.ID]; ch != nil {
				ch <- msg.cdpReply
				delete(p.waiting, msg.ID)
			}
		} else {
			p.event(msg.Method, msg.Params)
		}
		p.mu.Unlock()
	}
}

// event keeps what a developer would see as an error in the console:
// exceptions, console.error, and browser log entries such as CSP
// violations and failed requests.
func (p *page) event(method string, params json.RawMessage) {
	switch method {
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		json.Unmarshal(params, &e)
		p.logged = append(p.logged, "exception: "+e.ExceptionDetails.Text+" "+e.ExceptionDetails.Exception.Description)
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string            `json:"type"`
			Args []json.RawMessage `json:"args"`
		}
		json.Unmarshal(params, &e)
		if e.Type == "error" || e.Type == "assert" {
			p.logged = append(p.logged, "console."+e.Type+": "+fmt.Sprint(rawStrings(e.Args)))
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		json.Unmarshal(params, &e)
		if e.Entry.Level == "error" {
			p.logged = append(p.logged, "log ("+e.Entry.Source+"): "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

func rawStrings(raw []json.RawMessage) []string {
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = string(r)
	}
	return out
}

func (p *page) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logged...)
}

func (p *page) call(t *testing.T, method string, params any, out any) {
	t.Helper()
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	ch := make(chan cdpReply, 1)
	p.waiting[id] = ch
	p.mu.Unlock()
	p.writeMu.Lock()
	err := p.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	p.writeMu.Unlock()
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			t.Fatalf("%s: %s %s", method, r.Error.Message, r.Error.Data)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no answer", method)
	}
}

func (p *page) navigate(t *testing.T, url string) {
	t.Helper()
	p.call(t, "Page.navigate", map[string]any{"url": url}, nil)
	p.waitFor(t, `return document.readyState === "complete"`, 15*time.Second)
}

// evalInto runs body as an async function in the page and decodes what it
// returns into out.
func (p *page) evalInto(t *testing.T, body string, out any) {
	t.Helper()
	if err := p.tryEval(t, body, out); err != nil {
		t.Fatal(err)
	}
}

func (p *page) eval(t *testing.T, body string) { p.evalInto(t, body, nil) }

func (p *page) evalBool(t *testing.T, body string) bool {
	var b bool
	p.evalInto(t, body, &b)
	return b
}

func (p *page) tryEval(t *testing.T, body string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	p.call(t, "Runtime.evaluate", map[string]any{
		"expression":    "(async () => { " + body + " })()",
		"awaitPromise":  true,
		"returnByValue": true,
	}, &r)
	if r.ExceptionDetails != nil {
		return fmt.Errorf("eval %q: %s %s", body, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

func (p *page) waitFor(t *testing.T, cond string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok any
		err := p.tryEval(t, cond, &ok)
		if err == nil && ok != nil && ok != false {
			return
		}
		if time.Now().After(deadline) {
			p.screenshot(t, "failed-"+strings.ReplaceAll(p.conn.RemoteAddr().String(), ":", "_")+".png")
			t.Fatalf("timed out waiting for %s (last error: %v)", cond, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// typeInto focuses an element and types into it. Input goes to the tab
// in front, so the page is brought there first.
func (p *page) typeInto(t *testing.T, selector, text string) {
	p.call(t, "Page.bringToFront", nil, nil)
	p.eval(t, fmt.Sprintf(`document.querySelector(%q).focus()`, selector))
	p.call(t, "Input.insertText", map[string]any{"text": text}, nil)
}

func (p *page) pressEnter(t *testing.T) {
	p.call(t, "Page.bringToFront", nil, nil)
	for _, typ := range []string{"keyDown", "keyUp"} {
		ev := map[string]any{"type": typ, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
		if typ == "keyDown" {
			ev["text"] = "\r"
		}
		p.call(t, "Input.dispatchKeyEvent", ev, nil)
	}
}

// shots takes two screenshots, name-light.png and name-dark.png, with the
// page's prefers-color-scheme set to each in turn.
func (p *page) shots(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("PARLEY_SCREENSHOTS") == "" {
		return
	}
	for _, scheme := range []string{"light", "dark"} {
		p.call(t, "Emulation.setEmulatedMedia", map[string]any{
			"features": []map[string]string{{"name": "prefers-color-scheme", "value": scheme}},
		}, nil)
		p.settle(t)
		p.screenshot(t, name+"-"+scheme+".png")
	}
	p.call(t, "Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{}}, nil)
}

// phoneShot takes one screenshot on a phone-sized viewport, after running
// prep in the page.
func (p *page) phoneShot(t *testing.T, name, prep string) {
	t.Helper()
	if os.Getenv("PARLEY_SCREENSHOTS") == "" {
		return
	}
	p.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true,
	}, nil)
	p.eval(t, prep)
	p.settle(t)
	p.screenshot(t, name)
	p.call(t, "Emulation.clearDeviceMetricsOverride", nil, nil)
	p.settle(t)
}

// settle waits for the page to lay out and paint a frame (or 500 ms, for
// a tab that paints no frames).
func (p *page) settle(t *testing.T) {
	p.call(t, "Page.bringToFront", nil, nil)
	p.eval(t, `await Promise.race([new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))), new Promise(r => setTimeout(r, 500))])`)
}

func (p *page) screenshot(t *testing.T, name string) {
	dir := os.Getenv("PARLEY_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log("screenshot:", err)
		return
	}
	p.call(t, "Page.bringToFront", nil, nil)
	var r struct {
		Data string `json:"data"`
	}
	p.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	if err != nil {
		t.Log("screenshot:", err)
	}
}
