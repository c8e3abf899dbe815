// Go peer of bench/bench_core.c: the same scenarios and keys, in plain Go.
//
//	go_peer spawn N     N goroutines that all exist before any runs (each
//	                    first waits on a start channel that is closed once
//	                    all are made: with two threads the runtime would
//	                    otherwise run them while main still spawns), then
//	                    a sync.WaitGroup waits for all            ns/task
//	go_peer pingpong N  two goroutines bouncing a message through two
//	                    1-slot channels, N round trips          ns/switch
//	go_peer yield N     a lone goroutine calling runtime.Gosched  ns/yield
//	go_peer sleep N     N goroutines each time.Sleep(1 s), all asleep at
//	                    once: wall s; resident B/task once every one has
//	                    started (a WaitGroup counts them in); "note: ..."
//	                    if some had already woken then (spawning took
//	                    over a second: goroutines start as they are made)
//	go_peer sem N       N goroutines through a 100-slot buffered channel
//	                    (Go's semaphore idiom), each holding a slot for
//	                    time.Sleep(1 ms): wall s
//
// GOMAXPROCS comes from the environment (tools/bench.sh sets 2: the
// machine's two cores); the program prints the value it ran with.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func rssBytes() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize())
}

func spawn(n int) {
	var wg sync.WaitGroup
	var ran int64
	start := make(chan struct{})
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			<-start
			atomic.AddInt64(&ran, 1)
			wg.Done()
		}()
	}
	close(start)
	wg.Wait()
	d := time.Since(t0)
	if ran != int64(n) {
		fmt.Fprintf(os.Stderr, "go_peer: spawn: %d of %d ran\n", ran, n)
		os.Exit(1)
	}
	fmt.Printf("spawn: %.1f ns/task\n", float64(d.Nanoseconds())/float64(n))
}

func pingpong(n int) {
	ping := make(chan int, 1)
	pong := make(chan int, 1)
	go func() {
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	d := time.Since(t0)
	fmt.Printf("pingpong: %.1f ns/switch\n", float64(d.Nanoseconds())/(2*float64(n)))
}

func yield(n int) {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	d := time.Since(t0)
	fmt.Printf("yield: %.1f ns/yield\n", float64(d.Nanoseconds())/float64(n))
}

func sleep(n int) {
	runtime.GC()
	base := rssBytes()
	var started, done sync.WaitGroup
	var woke int64
	started.Add(n)
	done.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			time.Sleep(time.Second)
			atomic.AddInt64(&woke, 1)
			done.Done()
		}()
	}
	started.Wait()
	peak := rssBytes()
	early := atomic.LoadInt64(&woke) // > 0: not all asleep at once
	done.Wait()
	d := time.Since(t0)
	if woke != int64(n) {
		fmt.Fprintf(os.Stderr, "go_peer: sleep: %d of %d woke\n", woke, n)
		os.Exit(1)
	}
	fmt.Printf("sleep_wall: %.3f s\n", d.Seconds())
	fmt.Printf("sleep_rss: %.0f B/task\n", (peak-base)/float64(n))
	if early > 0 {
		fmt.Printf("note: %d of %d goroutines woke before the last one slept: not all asleep at once\n", early, n)
	}
}

func sem(n int) {
	slots := make(chan struct{}, 100)
	var wg sync.WaitGroup
	var held int64
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			slots <- struct{}{}
			time.Sleep(time.Millisecond)
			atomic.AddInt64(&held, 1)
			<-slots
			wg.Done()
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	if held != int64(n) {
		fmt.Fprintf(os.Stderr, "go_peer: sem: %d of %d held it\n", held, n)
		os.Exit(1)
	}
	fmt.Printf("sem_wall: %.3f s\n", d.Seconds())
}

func main() {
	scenarios := map[string]func(int){
		"spawn": spawn, "pingpong": pingpong, "yield": yield,
		"sleep": sleep, "sem": sem,
	}
	var run func(int)
	n := 0
	if len(os.Args) == 3 {
		run = scenarios[os.Args[1]]
		n, _ = strconv.Atoi(os.Args[2])
	}
	if run == nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: go_peer spawn|pingpong|yield|sleep|sem N")
		os.Exit(2)
	}
	fmt.Printf("threads: %d GOMAXPROCS\n", runtime.GOMAXPROCS(0))
	run(n)
}
