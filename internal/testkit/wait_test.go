package testkit

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	var polls atomic.Int32
	WaitFor(t, time.Minute, "the fifth poll", func() bool { return polls.Add(1) == 5 })
	if n := polls.Load(); n != 5 {
		t.Errorf("polled %d times, want 5", n)
	}
}

func TestWaitForFailsAfterTheTimeoutNamingTheCondition(t *testing.T) {
	r := &recorder{TB: t}
	returned := false
	r.run(func() {
		WaitFor(r, 20*time.Millisecond, "pigs to fly", func() bool { return false })
		returned = true
	})
	if returned || !r.fatal {
		t.Fatal("WaitFor returned for a condition that never held")
	}
	if f := r.failures(); len(f) != 1 || !strings.Contains(f[0], "pigs to fly") {
		t.Errorf("failures %q, want one naming the condition", f)
	}
}
