//go:build linux

package natlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// DialContext dials addr from inside the host's namespace: a socket belongs
// to the namespace of the thread that made it, so the dial runs on a
// thread of its own that enters the namespace and then ends with its
// goroutine (LockOSThread without Unlock), so no other goroutine ever runs
// in the namespace. The connection works from any goroutine afterwards.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		f, err := os.Open("/var/run/netns/" + h.NS)
		if err != nil {
			done <- result{err: fmt.Errorf("natlab: open namespace %s: %w", h.NS, err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("natlab: setns %s: %w", h.NS, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// HTTPClient is an HTTP client whose connections start in the host's
// namespace, for the client API a daemon serves on that namespace's
// 127.0.0.1.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         h.DialContext,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     30 * time.Second,
		},
		Timeout: 2 * time.Minute,
	}
}
