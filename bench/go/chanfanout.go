// chanfanout.go - the Go baseline for chan_1p4c in bench/chan.c.
//
// One producer sends 2,000,000 (times WEFT_BENCH_SCALE, at least 10,000)
// integers into a channel of capacity 1,024 and closes it; four consumers
// range over the channel and add up what they get. GOMAXPROCS is Go's
// default. Timed from the first go statement until every goroutine is
// done; the sum is checked. Prints "chan_1p4c.go <M> Mitems/s": the best
// of 5 runs after 1 warm-up.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

const consumers = 4

func run(n int) float64 {
	c := make(chan uint64, 1024)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total uint64
	start := time.Now()
	wg.Add(consumers + 1)
	for i := 0; i < consumers; i++ {
		go func() {
			var sum uint64
			for v := range c {
				sum += v
			}
			mu.Lock()
			total += sum
			mu.Unlock()
			wg.Done()
		}()
	}
	go func() {
		for i := uint64(1); i <= uint64(n); i++ {
			c <- i
		}
		close(c)
		wg.Done()
	}()
	wg.Wait()
	elapsed := time.Since(start)
	if want := uint64(n) * uint64(n+1) / 2; total != want {
		fmt.Fprintf(os.Stderr, "chanfanout: FAILED: sum %d, expected %d\n", total, want)
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / float64(n)
}

func main() {
	scale := 1.0
	if s, err := strconv.ParseFloat(os.Getenv("WEFT_BENCH_SCALE"), 64); err == nil && s > 0 {
		scale = s
	}
	n := int(2000000 * scale)
	if n < 10000 {
		n = 10000
	}
	run(n) // warm-up
	best := 0.0
	for i := 0; i < 5; i++ {
		if v := run(n); i == 0 || v < best {
			best = v
		}
	}
	fmt.Printf("chan_1p4c.go %.1f Mitems/s\n", 1e3/best)
}
