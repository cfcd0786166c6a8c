//go:build unix

package dag

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used so far (every thread, the
// garbage collector's included). Benchmarks report it per operation:
// on a machine shared with other work it moves far less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
