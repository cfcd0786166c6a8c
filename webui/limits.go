package webui

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the limits in Config.
const (
	defaultMaxConns    = 1024
	defaultBodyTimeout = 30 * time.Second
	// headerTimeout bounds reading a request's headers; idleTimeout an
	// idle keep-alive connection.
	headerTimeout = 10 * time.Second
	idleTimeout   = 60 * time.Second
	// writeTimeout bounds writing an answer, counted from the end of the
	// request's headers: longer than the longest /sync long-poll (5
	// minutes), so that it ends only clients that stopped reading.
	writeTimeout = 6 * time.Minute
	// maxHeaderBytes bounds a request's headers; Matrix requests carry a
	// token and little else.
	maxHeaderBytes = 64 << 10
)

// limitListener accepts at most max connections at once. Beyond that it
// stops accepting: further clients wait in the kernel's backlog and hold
// none of the process's file descriptors, which libp2p and Badger need.
type limitListener struct {
	net.Listener
	slots chan struct{}
	open  atomic.Int64
	peak  atomic.Int64
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	n := l.open.Add(1)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.slots
	})
	return err
}

// OpenConns is the number of HTTP connections open now, and the most that
// were ever open at once.
func (s *Server) OpenConns() (now, peak int) {
	if s.limit == nil {
		return 0, 0
	}
	return int(s.limit.open.Load()), int(s.limit.peak.Load())
}

// bodyDeadline bounds the time a client may take to send a request's
// body: a client trickling a byte every few seconds would otherwise hold
// its connection, and a descriptor, for as long as it likes. The deadline
// is lifted once the body is read, so it never ends a long-poll.
func (s *Server) bodyDeadline(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) != nil {
		return // not a real connection (tests driving the handler)
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
}

type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Lifted only at the end of a whole body: after a timeout the server
	// must still be held to the deadline while it closes the connection.
	if err == io.EOF && !b.lifted {
		b.lifted = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
