package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/parley-p2p/parley/node"
)

// apiClient talks to the running daemon as its owner, with the token the
// daemon left in its data dir.
type apiClient struct {
	base, token string
	http        *http.Client
}

func newAPIClient(dataDir string) (*apiClient, error) {
	addr, token, err := node.ReadCLIFiles(dataDir)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: "http://" + addr, token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// call sends a request and decodes the answer, turning Matrix errors into
// one-line Go errors. A daemon still loading its rooms answers 503; the
// call is tried again for up to startWait.
func (c *apiClient) call(method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	deadline := time.Now().Add(startWait)
	for {
		status, b, err := c.do(method, path, payload)
		if err != nil {
			return err
		}
		if status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // a retry interval, not synchronisation
			continue
		}
		if status != http.StatusOK {
			var e struct {
				Code string `json:"errcode"`
				Msg  string `json:"error"`
			}
			if json.Unmarshal(b, &e) == nil && e.Msg != "" {
				return fmt.Errorf("%s", e.Msg)
			}
			return fmt.Errorf("the daemon answered %d %s", status, http.StatusText(status))
		}
		return json.Unmarshal(b, out)
	}
}

// startWait is how long the command line waits for a daemon that is still
// starting.
const startWait = 15 * time.Second

// do sends one request and returns the status and up to 1 MiB of body.
func (c *apiClient) do(method, path string, payload []byte) (int, []byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("the daemon at %s did not answer: %v", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// cmdJoin joins the room an invite link names, through the running daemon.
func cmdJoin(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", node.DefaultDataDir(), "data directory of the running daemon")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("join: give exactly one invite link")
	}
	c, err := newAPIClient(*dir)
	if err != nil {
		return err
	}
	var out struct {
		RoomID string `json:"room_id"`
	}
	if err := c.call(http.MethodPost, "/_parley/v1/join_link", map[string]string{"link": fs.Arg(0)}, &out); err != nil {
		return fmt.Errorf("join: %v", err)
	}
	fmt.Fprintf(stdout, "joined %s\n", out.RoomID)
	return nil
}

// cmdInvite makes an invite link to a room, through the running daemon.
func cmdInvite(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", node.DefaultDataDir(), "data directory of the running daemon")
	maxUses := fs.Int("max-uses", 0, "how many people may use the link (0: no limit)")
	expires := fs.Duration("expires", 0, "how long the link stays valid, e.g. 24h (0: until revoked)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("invite: give exactly one room ID")
	}
	if *maxUses < 0 || *expires < 0 {
		return fmt.Errorf("invite: --max-uses and --expires must not be negative")
	}
	c, err := newAPIClient(*dir)
	if err != nil {
		return err
	}
	body := map[string]any{}
	if *maxUses > 0 {
		body["max_uses"] = *maxUses
	}
	if *expires > 0 {
		body["expires_in_ms"] = expires.Milliseconds()
	}
	var out struct {
		Link    string `json:"link"`
		WebLink string `json:"web_link"`
	}
	if err := c.call(http.MethodPost, "/_parley/v1/rooms/"+url.PathEscape(fs.Arg(0))+"/links", body, &out); err != nil {
		return fmt.Errorf("invite: %v", err)
	}
	fmt.Fprintf(stdout, "%s\n%s\n", out.Link, out.WebLink)
	return nil
}
