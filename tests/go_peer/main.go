// A tiny stdlib-only Go program that plays a broken Locust worker, for tests with a foreign peer.
//
//	go-peer --master-host HOST --master-port PORT --mode no-zmtp|panic|garbage-output
//
// no-zmtp: connects over TCP and never sends a ZMTP greeting; a goroutine blocks forever in waitForever.
// panic: connects, prints a line, then panics.
// garbage-output: prints 50 MB of random bytes and one 10 MB line without a newline, then waits forever.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"time"
)

// waitForever blocks on a channel nobody ever sends on (a stuck goroutine for the stack-dump tests).
func waitForever(ready chan<- struct{}) {
	never := make(chan struct{})
	close(ready)
	<-never
}

// startWaiter starts waitForever in its own goroutine and returns once it is running.
func startWaiter() {
	ready := make(chan struct{})
	go waitForever(ready)
	<-ready
}

// sleepForever blocks the calling goroutine for good (a sleeping goroutine keeps Go's deadlock detector quiet).
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func connect(host string, port int) net.Conn {
	conn, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: cannot connect to %s:%d: %v\n", host, port, err)
		os.Exit(1)
	}
	return conn
}

func garbage() {
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 1<<20)
	for i := 0; i < 50; i++ {
		rng.Read(buf)
		out.Write(buf)
	}
	line := make([]byte, 10<<20)
	for i := range line {
		line[i] = 'x'
	}
	out.Write(line)
	out.Flush()
}

func main() {
	host := flag.String("master-host", "127.0.0.1", "the master's host")
	port := flag.Int("master-port", 5557, "the master's port")
	mode := flag.String("mode", "no-zmtp", "no-zmtp, panic or garbage-output")
	flag.Parse()

	switch *mode {
	case "no-zmtp":
		conn := connect(*host, *port)
		defer conn.Close()
		startWaiter()
		fmt.Printf("go-peer: connected to %s:%d, sending nothing\n", *host, *port)
		io.Copy(io.Discard, conn) // reads whatever the master sends, answers nothing
		sleepForever()
	case "panic":
		conn := connect(*host, *port)
		defer conn.Close()
		fmt.Printf("go-peer: connected to %s:%d, about to panic\n", *host, *port)
		panic("locust worker broke on purpose")
	case "garbage-output":
		garbage()
		startWaiter()
		sleepForever()
	default:
		fmt.Fprintf(os.Stderr, "go-peer: unknown --mode %q\n", *mode)
		os.Exit(2)
	}
}
