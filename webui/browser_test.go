//go:build browser

// The browser test drives the bundled web app in headless Chromium against
// two real nodes: claim both nodes, create a room, send a message, invite
// with a link, join with it on the other node, and see the reply arrive
// live. It also runs the QR encoder's self-check in the page. It speaks the
// Chrome DevTools protocol itself (over gorilla/websocket, already in the
// module graph), so it needs only a Chromium binary:
//
//	go test -tags browser -run TestBrowser -v ./webui/
//
// PARLEY_CHROMIUM names the binary (default: chromium, chromium-browser or
// google-chrome on PATH); PARLEY_SCREENSHOTS, a folder for screenshots.
package webui_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/parley-p2p/parley/node"
)

func TestBrowser(t *testing.T) {
	bin := findChromium(t)
	a := startNode(t)
	b := startNode(t, a.Addrs()...)
	browser := startChromium(t, bin)

	pa := browser.open(t, "http://"+a.HTTPAddr()+"/")
	pb := browser.open(t, "http://"+b.HTTPAddr()+"/")

	// The QR encoder reads its own codes back (format, masks, blocks,
	// Reed-Solomon syndromes) for texts up to a 640-character link.
	var failures []string
	pa.evalInto(t, `return (await import("/qr.js")).qrSelfCheck()`, &failures)
	if len(failures) > 0 {
		t.Fatalf("QR self-check: %v", failures)
	}

	claim := func(p *page, user string) {
		p.waitFor(t, `return document.querySelector("#auth h1")?.textContent === "Claim this node"`, 15*time.Second)
		p.eval(t, fmt.Sprintf(`const f = document.querySelector("#auth form");
			f.username.value = %q; f.password.value = "a long password"; f.password2.value = "a long password";
			f.requestSubmit()`, user))
		p.waitFor(t, `return !document.getElementById("app").hidden`, 15*time.Second)
	}
	claim(pa, "alice")
	claim(pb, "bob")

	// Alice creates a room and writes in it.
	pa.eval(t, `document.getElementById("new-room-btn").click()`)
	pa.eval(t, `const d = document.querySelector("dialog[open]"); d.querySelector("[name=name]").value = "Browser test room";
		d.querySelector("[name=topic]").value = "made by browser_test.go"; d.querySelector("form").requestSubmit()`)
	pa.waitFor(t, `return document.getElementById("room-name").textContent === "Browser test room"`, 15*time.Second)
	pa.typeInto(t, "#composer-input", "hello from alice")
	pa.pressEnter(t)
	pa.waitFor(t, `return [...document.querySelectorAll("#timeline .msg:not(.pending) .body")].some(e => e.textContent === "hello from alice")`, 15*time.Second)

	// An invite link, with its QR code.
	pa.eval(t, `document.getElementById("link-btn").click()`)
	pa.eval(t, `document.querySelector("dialog[open] form").requestSubmit()`)
	pa.waitFor(t, `return document.querySelector("dialog[open] svg.qr")`, 15*time.Second)
	var links []string
	pa.evalInto(t, `return [...document.querySelectorAll("dialog[open] .copy-row input")].map(i => i.value)`, &links)
	if len(links) < 2 || !strings.HasPrefix(links[0], "parley:join/") || !strings.Contains(links[1], "/#/join/") {
		t.Fatalf("link dialog shows %q", links)
	}
	pa.screenshot(t, "link-dialog.png")
	pa.eval(t, `document.querySelector("dialog[open]").close()`)

	// Bob opens the link on his own node's app and joins.
	code := links[1][strings.Index(links[1], "#/join/")+len("#/join/"):]
	pb.navigate(t, "http://"+b.HTTPAddr()+"/#/join/"+code)
	pb.waitFor(t, `return document.querySelector("dialog[open] textarea")?.value.startsWith("parley:join/")`, 15*time.Second)
	pb.eval(t, `document.querySelector("dialog[open] form").requestSubmit()`)
	pb.waitFor(t, `return document.getElementById("room-name").textContent === "Browser test room"`, 90*time.Second)
	pb.waitFor(t, `return [...document.querySelectorAll("#timeline .msg .body")].some(e => e.textContent === "hello from alice")`, 30*time.Second)

	// Bob answers; Alice sees it arrive over her /sync long-poll.
	pb.waitFor(t, `return !document.querySelector("dialog[open]")`, 5*time.Second)
	pb.typeInto(t, "#composer-input", "hi from bob")
	pb.pressEnter(t)
	pb.waitFor(t, `return [...document.querySelectorAll("#timeline .msg:not(.pending) .body")].some(e => e.textContent === "hi from bob")`, 30*time.Second)
	pa.waitFor(t, `return [...document.querySelectorAll("#timeline .msg .body")].some(e => e.textContent === "hi from bob")`, 30*time.Second)
	pa.waitFor(t, `return [...document.querySelectorAll("#members .member")].some(e => e.textContent.includes("bob"))`, 15*time.Second)
	pa.screenshot(t, "alice-room.png")
	pb.screenshot(t, "bob-room.png")

	// The node panel shows the identity with a QR code.
	pa.eval(t, `document.getElementById("node-btn").click()`)
	pa.waitFor(t, `return document.querySelector("dialog[open] svg.qr")`, 15*time.Second)

	for name, p := range map[string]*page{"alice": pa, "bob": pb} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors:\n%s", name, strings.Join(errs, "\n"))
		}
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
	t.Skip("no Chromium found; set PARLEY_CHROMIUM")
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
// violations. Failed requests are left out: the app probes /register on
// purpose and the answer is a 401.
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
			} `json:"entry"`
		}
		json.Unmarshal(params, &e)
		if e.Entry.Level == "error" && e.Entry.Source != "network" {
			p.logged = append(p.logged, "log ("+e.Entry.Source+"): "+e.Entry.Text)
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

func (p *page) screenshot(t *testing.T, name string) {
	dir := os.Getenv("PARLEY_SCREENSHOTS")
	if dir == "" {
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
