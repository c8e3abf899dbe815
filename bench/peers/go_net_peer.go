// Go peer of tools/bench-net.sh: an echo server and an HTTP/1.1
// keep-alive hello world, in plain Go (standard library only).
//
//	go_net_peer echo PORT   TCP echo on 127.0.0.1:PORT: a goroutine per
//	                        connection reading into a buffer and writing
//	                        back what it read
//	go_net_peer http PORT   net/http with one handler writing
//	                        "Hello, World!\n" (net/http keeps connections
//	                        alive as HTTP/1.1 asks)
//
// Runs until killed. GOMAXPROCS is Go's default: tools/bench-net.sh pins
// the server to one CPU, and the runtime sizes itself to its affinity.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "echo" && os.Args[1] != "http") {
		fmt.Fprintln(os.Stderr, "usage: go_net_peer echo|http PORT")
		os.Exit(2)
	}
	addr := "127.0.0.1:" + os.Args[2]
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_net_peer:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", addr)
	if os.Args[1] == "echo" {
		for {
			c, err := ln.Accept()
			if err != nil {
				continue
			}
			go echo(c)
		}
	}
	hello := []byte("Hello, World!\n")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	fmt.Fprintln(os.Stderr, "go_net_peer:", http.Serve(ln, nil))
	os.Exit(1)
}
