// skynet.go - the Go baseline for bench/skynet.c.
//
// The same tree as the C program: 1,000,000 leaves, fan-out 10, each node
// starts 10 goroutines for its children and sums what they send back on a
// channel (the way the benchmark is usually written in Go; the channel is
// buffered to the fan-out so a child never waits for its parent to receive,
// which is no slower than the unbuffered original); a leaf sends its
// own number. The total must be 499999500000. GOMAXPROCS is Go's default,
// the CPUs the process may use, like weft's default worker count.
// WEFT_BENCH_SCALE < 1 removes levels as in the C program. Prints
// "skynet.go <ms> ms": the best of 5 runs after 1 warm-up.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

const fanout = 10

func node(out chan<- int64, num int64, size int64) {
	if size == 1 {
		out <- num
		return
	}
	results := make(chan int64, fanout)
	sub := size / fanout
	for i := int64(0); i < fanout; i++ {
		go node(results, num+i*sub, sub)
	}
	var sum int64
	for i := 0; i < fanout; i++ {
		sum += <-results
	}
	out <- sum
}

func tree(leaves int64) float64 {
	out := make(chan int64)
	start := time.Now()
	go node(out, 0, leaves)
	sum := <-out
	elapsed := time.Since(start)
	if want := leaves * (leaves - 1) / 2; sum != want {
		fmt.Fprintf(os.Stderr, "skynet.go: FAILED: sum %d, expected %d\n", sum, want)
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / 1e6
}

func main() {
	scale := 1.0
	if s, err := strconv.ParseFloat(os.Getenv("WEFT_BENCH_SCALE"), 64); err == nil && s > 0 {
		scale = s
	}
	// floor(log10(1e6 * scale)) levels, within [1, 6], as in skynet.c.
	want := 1e6 * scale
	leaves := int64(10)
	for leaves < 1000000 && float64(leaves*10) <= want {
		leaves *= 10
	}
	tree(leaves) // warm-up
	best := 0.0
	for i := 0; i < 5; i++ {
		if v := tree(leaves); i == 0 || v < best {
			best = v
		}
	}
	fmt.Printf("skynet.go %.1f ms\n", best)
}
