// A crash in the middle of writing: a child process (this test binary run
// again) writes until it is killed, and the store it leaves must hold
// every acknowledged update whole and no update in part.
package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

const crashDirEnv = "PARLEY_STORE_CRASH_CHILD_DIR"

// crashUpdate writes update i: an event at a new position and two more
// keys; every one of them or none must survive a crash.
func crashUpdate(tx *Txn, i int) error {
	id := fmt.Sprintf("$crash%d", i)
	p := tx.NextPos()
	if err := tx.PutEvent("!crash", id, &EventRecord{Version: "12", PDU: []byte(`{}`), Pos: p}); err != nil {
		return err
	}
	if err := setKey(tx, fmt.Sprintf("a/%d", i), id); err != nil {
		return err
	}
	return setKey(tx, fmt.Sprintf("b/%d", i), strconv.FormatUint(p, 10))
}

// TestCrashChild is the child's side: it does nothing unless run by
// TestReopenAfterCrashMidBatch. It writes updates from several goroutines
// (so they share group commits), every tenth one failing halfway through,
// and prints "ack i" once update i is committed, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestReopenAfterCrashMidBatch")
	}
	s, err := Open(dir, Options{MinFree: -1})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	acks := make(chan int, 64)
	for g := range 4 {
		go func() {
			for i := g; ; i += 4 {
				err := s.Update(func(tx *Txn) error {
					if i%10 == 9 {
						// Halfway: the event is written, the rest is not.
						if err := tx.PutEvent("!crash", fmt.Sprintf("$crash%d", i), &EventRecord{Version: "12", Pos: tx.NextPos()}); err != nil {
							return err
						}
						return errors.New("fails halfway")
					}
					return crashUpdate(tx, i)
				})
				if err == nil {
					acks <- i
				}
			}
		}()
	}
	for i := range acks {
		fmt.Println("ack", i)
	}
}

func TestReopenAfterCrashMidBatch(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	acked := map[int]bool{}
	lines := bufio.NewScanner(out)
	for len(acked) < 300 && lines.Scan() {
		if i, ok := strings.CutPrefix(lines.Text(), "ack "); ok {
			n, _ := strconv.Atoi(i)
			acked[n] = true
		} else {
			t.Logf("child: %s", lines.Text())
		}
	}
	// Killed while it is writing: no Close, no flush.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// Up to 64 acknowledgements are buffered, unprinted; four writers
	// interleave indexes, so stored updates reach a little past the last
	// index printed.
	const beyond = 1024
	if len(acked) < 300 {
		t.Fatalf("the child acknowledged only %d updates", len(acked))
	}

	s, err := Open(dir, Options{MinFree: -1})
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	defer s.Close()
	maxIndex := 0
	for i := range acked {
		maxIndex = max(maxIndex, i)
	}
	var whole, highest uint64
	positions := map[uint64]int{}
	err = s.View(func(tx *Txn) error {
		for i := 0; i <= maxIndex+beyond; i++ {
			id := fmt.Sprintf("$crash%d", i)
			ev, evErr := tx.Event(id)
			a, aErr := get(tx.txn, fmt.Appendf(nil, "a/%d", i))
			b, bErr := get(tx.txn, fmt.Appendf(nil, "b/%d", i))
			if i%10 == 9 {
				if evErr == nil || aErr == nil || bErr == nil {
					t.Errorf("update %d failed halfway, yet part of it is stored", i)
				}
				continue
			}
			found := []bool{evErr == nil, aErr == nil, bErr == nil}
			if found[0] != found[1] || found[1] != found[2] {
				t.Errorf("update %d is stored in part: event, a, b = %v", i, found)
				continue
			}
			if !found[0] {
				if acked[i] {
					t.Errorf("update %d was acknowledged but is lost", i)
				}
				continue
			}
			whole++
			if string(a) != id || string(b) != strconv.FormatUint(ev.Pos, 10) {
				t.Errorf("update %d stored with mismatched parts: %s %s pos %d", i, a, b, ev.Pos)
			}
			if j, dup := positions[ev.Pos]; dup {
				t.Errorf("updates %d and %d share position %d", j, i, ev.Pos)
			}
			positions[ev.Pos] = i
			highest = max(highest, ev.Pos)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pos() < highest {
		t.Errorf("reopened at position %d below a stored event's %d", s.Pos(), highest)
	}
	var next uint64
	if err := s.Update(func(tx *Txn) error { next = tx.NextPos(); return crashUpdate(tx, 1<<30) }); err != nil {
		t.Fatal(err)
	}
	if next <= highest {
		t.Errorf("after reopening, a new update took position %d, at or below a stored %d", next, highest)
	}
	t.Logf("%d updates acknowledged, %d stored whole after the crash", len(acked), whole)
}
