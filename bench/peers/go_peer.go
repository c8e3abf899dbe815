// Go peer of bench/bench_core.c: the same figures, same keys.
//
//	yield1 / yield10k  runtime.Gosched() round trip, 1 / 10,000 goroutines
//	spawn_join         go f(); wait on a channel, one at a time
//	spawn_join100      100 goroutines, then wait for the 100
//	sleepers_wall      N goroutines each time.Sleep(10 ms): start them all
//	                   and wait for all of them
//	sleepers_rss       resident memory per goroutine (/proc/self/statm), with
//	                   N goroutines parked on a channel at once (see
//	                   benchParked: 10 ms sleepers never all coexist in Go)
//
// usage: go_peer [sleepers]   (default 1,000,000)
// Runs with GOMAXPROCS=1 (one thread runs goroutines, like one tulip
// loop) unless GOMAXPROCS is set in the environment.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

func benchYield(ntasks, total int, key string) {
	each := total / ntasks
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < ntasks; i++ {
		wg.Add(1)
		go func() {
			for j := 0; j < each; j++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	s := "s"
	if ntasks == 1 {
		s = ""
	}
	fmt.Printf("%s: %.1f ns/yield  (runtime.Gosched round trip, %d goroutine%s)\n",
		key, float64(d.Nanoseconds())/float64(each*ntasks), ntasks, s)
}

func benchSpawnJoin(n, batch int, key string) {
	done := make(chan int, batch)
	t0 := time.Now()
	for k := 0; k < n; k += batch {
		for i := 0; i < batch; i++ {
			go func() { done <- 0 }()
		}
		for i := 0; i < batch; i++ {
			<-done
		}
	}
	d := time.Since(t0)
	how := "one at a time"
	if batch > 1 {
		how = "in batches of 100"
	}
	fmt.Printf("%s: %.1f ns/task  (go + run + channel receive, %s)\n",
		key, float64(d.Nanoseconds())/float64(n), how)
}

func benchSleepers(n int) {
	var finished sync.WaitGroup
	finished.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(10 * time.Millisecond)
			finished.Done()
		}()
	}
	finished.Wait()
	d := time.Since(t0)
	fmt.Printf("sleepers_wall: %.2f s  (%d goroutines each sleeping 10 ms: start and run to completion)\n",
		d.Seconds(), n)
}

// With 10 ms sleeps the early goroutines finish (and their stacks are
// reused) while main is still starting the rest, so the memory figure
// comes from goroutines that all block until every one has started.
func benchParked(n int) {
	runtime.GC()
	base := rssBytes()
	var started, finished sync.WaitGroup
	gate := make(chan struct{})
	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-gate
			finished.Done()
		}()
	}
	started.Wait()
	peak := rssBytes()
	close(gate)
	finished.Wait()
	fmt.Printf("sleepers_rss: %.2f KiB/task  (resident memory per parked goroutine, all %d alive at once, /proc/self/statm)\n",
		(peak-base)/1024/float64(n), n)
}

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	n := 1000000
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil && v > 0 {
			n = v
		}
	}
	benchYield(1, 2000000, "yield1")
	benchYield(10000, 4000000, "yield10k")
	benchSpawnJoin(1000000, 1, "spawn_join")
	benchSpawnJoin(1000000, 100, "spawn_join100")
	benchSleepers(n)
	benchParked(n)
}
