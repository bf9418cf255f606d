// echo_server.go - the Go baseline for bench/echo.c: a TCP echo server
// with one goroutine per connection on the net package.
//
//	echo_server_go PORT
//
// Listens on 127.0.0.1:PORT (0: the kernel picks), prints "listening on
// port N" once ready, and echoes every connection until it closes. Go
// sets TCP_NODELAY on accepted connections by default. bench/echo.c runs
// it with GOMAXPROCS=1, pinned to one CPU like every other server there.
package main

import (
	"fmt"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_server_go:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on port %d\n", l.Addr().(*net.TCPAddr).Port)
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
