package node

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A link made the moment the app can reach the node must carry an address:
// every status the API gives while the node starts lists one.
func TestStatusDuringStartListsAnAddress(t *testing.T) {
	// Not parallel: it frees a port and listens on it again, which another test could take in between.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, err := New(Config{
		DataDir: t.TempDir(), HTTPAddr: addr,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	type answer struct {
		status int
		addrs  int
	}
	var answers []answer
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://" + addr + "/_parley/v1/status")
			if err != nil {
				continue // not listening yet
			}
			var st struct {
				Addrs []string `json:"addrs"`
			}
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			answers = append(answers, answer{resp.StatusCode, len(st.Addrs)})
		}
	}()
	startErr := n.Start()
	close(stop)
	wg.Wait()
	if startErr != nil {
		t.Fatal(startErr)
	}
	for i, a := range answers {
		if a.status == http.StatusOK && a.addrs == 0 {
			t.Fatalf("status answer %d of %d (while starting) listed no address", i+1, len(answers))
		}
	}
	if got := len(n.Status().(map[string]any)["addrs"].([]string)); got == 0 {
		t.Fatalf("status right after Start lists no address")
	}
}
