// idle_go: the memory an idle goroutine costs, the Go peer of bench/idle/idle_tasks. Starts N
// goroutines that all block receiving from one channel, measures RSS with them blocked minus
// RSS before, divided by N, then closes the channel and checks that all N finish. Prints one
// key=value line like idle_tasks:
//
//	impl=go count=N created=N finished=N rss_per_task_bytes=... create_ms=... peak_rss_mb=... ok=1
//
// Build: go build -o idle_go idle_go.go (bench/report/run.sh does it when go is installed).
// GOMAXPROCS is left to the caller (run.sh sets 1, like the other single-threaded peers).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// rssBytes is the second field of /proc/self/statm (resident pages) in bytes.
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	fmt.Sscan(string(data), &size, &resident)
	return resident * int64(os.Getpagesize())
}

func main() {
	count := flag.Int("count", 100000, "goroutines")
	flag.Parse()
	if *count < 1 {
		fmt.Fprintln(os.Stderr, "idle_go: --count must be at least 1")
		os.Exit(2)
	}
	n := *count
	gate := make(chan struct{})
	var started int64
	var done sync.WaitGroup
	done.Add(n)
	runtime.GC()
	before := rssBytes()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&started, 1)
			<-gate
			done.Done()
		}()
	}
	for atomic.LoadInt64(&started) < int64(n) {
		runtime.Gosched()
	}
	createMs := float64(time.Since(t0).Nanoseconds()) / 1e6
	blocked := rssBytes()
	t1 := time.Now()
	close(gate)
	done.Wait()
	finishMs := float64(time.Since(t1).Nanoseconds()) / 1e6
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("impl=go count=%d created=%d finished=%d rss_per_task_bytes=%.1f create_ms=%.1f "+
		"create_ns_per_task=%.1f finish_ms=%.1f rss_before_mb=%.1f rss_blocked_mb=%.1f "+
		"peak_rss_mb=%.1f ok=1\n",
		n, n, n, float64(blocked-before)/float64(n), createMs, createMs*1e6/float64(n), finishMs,
		float64(before)/1048576, float64(blocked)/1048576, float64(ru.Maxrss)/1024)
}
