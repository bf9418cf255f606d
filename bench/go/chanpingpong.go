// chanpingpong.go - the Go baseline for chan_pingpong in bench/chan.c.
//
// Two goroutines and two unbuffered channels: one sends on ping and
// receives on pong, the other receives on ping and sends back on pong.
// GOMAXPROCS is Go's default (the CPUs the process may use), like weft's
// default worker count. N = 200,000 round trips times WEFT_BENCH_SCALE (at
// least 1,000). Prints "chan_pingpong.go <ns> ns/roundtrip": the best of 5
// runs after 1 warm-up.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func run(n int) float64 {
	ping := make(chan uint64)
	pong := make(chan uint64)
	done := make(chan uint64)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			v := <-ping
			pong <- v + 1
		}
	}()
	go func() {
		var v uint64
		for i := 0; i < n; i++ {
			ping <- v
			v = <-pong
		}
		done <- v
	}()
	v := <-done
	elapsed := time.Since(start)
	if v != uint64(n) {
		fmt.Fprintf(os.Stderr, "chanpingpong: FAILED: count %d, expected %d\n", v, n)
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / float64(n)
}

func main() {
	scale := 1.0
	if s, err := strconv.ParseFloat(os.Getenv("WEFT_BENCH_SCALE"), 64); err == nil && s > 0 {
		scale = s
	}
	n := int(200000 * scale)
	if n < 1000 {
		n = 1000
	}
	run(n) // warm-up
	best := 0.0
	for i := 0; i < 5; i++ {
		if v := run(n); i == 0 || v < best {
			best = v
		}
	}
	fmt.Printf("chan_pingpong.go %.1f ns/roundtrip\n", best)
}
