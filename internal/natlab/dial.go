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

// DialContext dials addr from inside the host's namespace. A socket
// belongs to the namespace of the thread that creates it, so the dial runs
// on a locked thread that enters the namespace, dials, and goes back to the
// thread's own namespace before it is unlocked. If going back fails, the
// thread stays locked and ends with its goroutine, so no other goroutine
// ever runs in a lab namespace. The connection works from any thread.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, back, err := h.dialInNamespace(ctx, network, addr)
		if back {
			runtime.UnlockOSThread()
		}
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

// dialInNamespace runs on a locked thread; back reports whether the thread
// is in its own namespace again.
func (h *Host) dialInNamespace(ctx context.Context, network, addr string) (c net.Conn, back bool, err error) {
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("natlab: this thread's namespace: %w", err)
	}
	defer own.Close()
	target, err := os.Open("/var/run/netns/" + h.NS)
	if err != nil {
		return nil, true, fmt.Errorf("natlab: open namespace %s: %w", h.NS, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("natlab: setns %s: %w", h.NS, err)
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	return c, unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil, err
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
