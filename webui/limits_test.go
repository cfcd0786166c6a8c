package webui

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// Seventy clients each send a request's headers and then trickle its body,
// a byte now and never another. The server holds at most MaxConns of them
// at once (the rest wait in the kernel's backlog, holding none of its file
// descriptors), cuts each at the body deadline with a 408, and a fresh
// client is then served.
func TestSlowBodiesCannotTakeEveryConnection(t *testing.T) {
	const maxConns = 20
	h := serve(t, Config{Addr: "127.0.0.1:0", MaxConns: maxConns, BodyTimeout: time.Second})
	s := h.srv
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	var slow []net.Conn
	t.Cleanup(func() {
		for _, c := range slow {
			c.Close()
		}
	})
	for range maxConns + 50 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
		fmt.Fprintf(c, "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", s.Addr())
	}
	testkit.WaitFor(t, 10*time.Second, "the server to hold its cap of connections", func() bool {
		open, _ := s.OpenConns()
		return open == maxConns
	})

	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get("http://" + s.Addr() + "/_matrix/client/versions")
	if err != nil {
		t.Fatalf("a fresh client after the slow ones: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh client: %d", resp.StatusCode)
	}
	if _, peak := s.OpenConns(); peak > maxConns {
		t.Errorf("%d connections were open at once, cap %d", peak, maxConns)
	}
	// Every slow client was answered 408 and cut; none reached a login.
	for i, c := range slow {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, " 408 ") {
			t.Errorf("slow client %d: %q, %v", i, line, err)
		}
	}
	if slices.Contains(h.rec.Calls(), "Login") {
		t.Errorf("a slow body reached the backend: %q", h.rec.Calls())
	}
}
