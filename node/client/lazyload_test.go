package client

import (
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/webui"
)

func TestLazySentCountsOnlyWhatTheClientConfirmed(t *testing.T) {
	var l lazySent
	dev := &webui.Session{UserID: "@a:x", DeviceID: "D"}
	other := &webui.Session{UserID: "@a:x", DeviceID: "E"}
	l.note(dev, 5, []string{"$m1", "$m2"})
	if h := l.holds(dev, []string{"$m1"}); len(h) != 0 {
		t.Fatalf("held before the client came back with the answer's token: %v", h)
	}
	l.begin(dev, 4) // a token the answer at 5 did not give
	if h := l.holds(dev, []string{"$m1"}); len(h) != 0 {
		t.Fatalf("held after another token: %v", h)
	}
	l.begin(dev, 5)
	if h := l.holds(dev, []string{"$m1", "$m2", "$m3"}); fmt.Sprint(h) != "map[$m1:true $m2:true]" {
		t.Fatalf("held after the answer's token: %v", h)
	}
	if h := l.holds(other, []string{"$m1"}); len(h) != 0 {
		t.Fatalf("another device holds %v", h)
	}
	l.begin(dev, 0)
	if h := l.holds(dev, []string{"$m1"}); len(h) != 0 {
		t.Fatalf("held after an initial sync: %v", h)
	}
}

func TestLazySentIsBounded(t *testing.T) {
	t.Run("a device's pending answers", func(t *testing.T) {
		var l lazySent
		dev := &webui.Session{UserID: "@a:x", DeviceID: "D"}
		for pos := uint64(1); pos <= maxLazyPending+2; pos++ {
			l.note(dev, pos, []string{fmt.Sprint("$", pos)})
		}
		if n := len(l.devices[lazyKey{"@a:x", "D"}].pending); n != maxLazyPending {
			t.Fatalf("%d answers pending, want %d", n, maxLazyPending)
		}
		l.begin(dev, 1) // dropped: the oldest
		if h := l.holds(dev, []string{"$1"}); len(h) != 0 {
			t.Fatalf("a dropped answer confirmed: %v", h)
		}
	})
	t.Run("a device's record", func(t *testing.T) {
		var l lazySent
		dev := &webui.Session{UserID: "@a:x", DeviceID: "D"}
		ids := make([]string, maxLazyPerDevice)
		for i := range ids {
			ids[i] = fmt.Sprint("$", i)
		}
		l.note(dev, 1, ids)
		l.begin(dev, 1)
		l.note(dev, 2, []string{"$new"})
		l.begin(dev, 2)
		r := l.devices[lazyKey{"@a:x", "D"}]
		if len(r.held) != 1 || !r.held["$new"] {
			t.Fatalf("a full record holds %d IDs, want it cleared for the new one", len(r.held))
		}
	})
	t.Run("the devices", func(t *testing.T) {
		var l lazySent
		for i := range maxLazyDevices + 5 {
			l.note(&webui.Session{UserID: "@a:x", DeviceID: fmt.Sprint(i)}, 1, []string{"$e"})
		}
		if n := len(l.devices); n != maxLazyDevices {
			t.Fatalf("%d devices' records, want %d", n, maxLazyDevices)
		}
		if _, ok := l.devices[lazyKey{"@a:x", "0"}]; ok {
			t.Fatal("the least recently used device's record was kept")
		}
	})
}
