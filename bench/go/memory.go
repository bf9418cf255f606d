// memory.go - the Go baseline for bench/memory.c.
//
// Usage: memory N. Starts N*WEFT_BENCH_SCALE goroutines (at least 1000) that
// each signal a WaitGroup and then block receiving from one shared channel,
// waits until all have signalled (and a little longer, so the last ones are
// really blocked), and reports per goroutine:
//
//	memory_<N>.go          resident set growth (/proc/self/statm), KiB
//	memory_<N>.go_memstats growth of runtime.MemStats Sys (what the Go
//	                       runtime got from the OS), KiB
//	memory_<N>.go_create   ns from the first go statement until all blocked
//
// Then closes the channel and waits for all goroutines to end. Run once per
// size in a fresh process, like the C program.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	var size, resident int64
	fmt.Sscan(string(b), &size, &resident)
	return resident * int64(os.Getpagesize())
}

func label(n int) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("memory_%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("memory_%dk", n/1000)
	}
	return fmt.Sprintf("memory_%d", n)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: memory N")
		os.Exit(2)
	}
	base, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	scale := 1.0
	if s, err := strconv.ParseFloat(os.Getenv("WEFT_BENCH_SCALE"), 64); err == nil && s > 0 {
		scale = s
	}
	n := int(float64(base) * scale)
	if n < 1000 {
		n = 1000
	}
	name := label(n)

	release := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)

	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	before := rss()

	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			ready.Done()
			<-release
			done.Done()
		}()
	}
	ready.Wait()
	created := time.Since(start)
	time.Sleep(20 * time.Millisecond)
	after := rss()
	runtime.ReadMemStats(&ms1)

	fmt.Printf("%s.go %.1f KiB/thread\n", name, float64(after-before)/1024/float64(n))
	fmt.Printf("%s.go_memstats %.1f KiB/thread\n", name, float64(ms1.Sys-ms0.Sys)/1024/float64(n))
	fmt.Printf("%s.go_create %.1f ns/thread\n", name, float64(created.Nanoseconds())/float64(n))

	close(release)
	done.Wait()
}
