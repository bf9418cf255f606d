// sleep.go - the Go baseline for sleep_100k in bench/sleep.c.
//
// 100,000 goroutines (times WEFT_BENCH_SCALE, at least 1,000), each
// sleeping 10 ms once with time.Sleep and then marking a sync.WaitGroup
// done; the wall time from the first go statement until Wait returns.
// GOMAXPROCS is Go's default (the CPUs the process may use), like weft's
// default worker count. Prints "sleep_100k.go <ms> ms": the best of 3
// runs after 1 warm-up.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

func run(n int) float64 {
	var wg sync.WaitGroup
	wg.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(10 * time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / 1e6
}

func main() {
	scale := 1.0
	if s := os.Getenv("WEFT_BENCH_SCALE"); s != "" {
		if v, err := strconv.ParseFloat(s, 64); err == nil && v > 0 {
			scale = v
		}
	}
	n := int(100000 * scale)
	if n < 1000 {
		n = 1000
	}
	run(n)
	best := 0.0
	for i := 0; i < 3; i++ {
		if v := run(n); i == 0 || v < best {
			best = v
		}
	}
	fmt.Printf("sleep_100k.go %.1f ms\n", best)
}
