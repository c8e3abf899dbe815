//! Tokio peer of bench/bench_core.c: the same scenarios and keys, on a
//! current_thread runtime (one thread, like one tulip loop).
//!
//!   tokio_peer spawn N     N tokio::spawn'ed tasks (a spawned task runs
//!                          only when the spawner yields, so all exist
//!                          before any runs), then await every JoinHandle
//!                                                             ns/task
//!   tokio_peer pingpong N  two tasks bouncing a message through two
//!                          tokio::sync::mpsc::channel(1), N round trips
//!                                                           ns/switch
//!   tokio_peer yield N     a lone task awaiting task::yield_now  ns/yield
//!   tokio_peer sleep N     N tasks each awaiting time::sleep(1 s), all
//!                          asleep at once: wall s; resident B/task once
//!                          every one has started ("note: ..." if some
//!                          had already woken then)
//!   tokio_peer sem N       N tasks through a tokio::sync::Semaphore of 100
//!                          permits, each holding one for time::sleep(1 ms)
//!                          (Tokio's timer wheel has 1 ms slots): wall s
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

fn rss_bytes() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0
}

fn check(got: usize, n: usize, what: &str) {
    if got != n {
        eprintln!("tokio_peer: {}: {} of {}", what, got, n);
        std::process::exit(1);
    }
}

async fn spawn(n: usize) {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(async { 1usize })).collect();
    let mut ran = 0;
    for h in handles {
        ran += h.await.unwrap();
    }
    let d = t0.elapsed();
    check(ran, n, "spawn: ran");
    println!("spawn: {:.1} ns/task", d.as_nanos() as f64 / n as f64);
}

async fn pingpong(n: usize) {
    let (ping_tx, mut ping_rx) = mpsc::channel::<usize>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<usize>(1);
    let ponger = tokio::spawn(async move {
        for _ in 0..n {
            let m = ping_rx.recv().await.unwrap();
            pong_tx.send(m).await.unwrap();
        }
    });
    let t0 = Instant::now();
    for i in 0..n {
        ping_tx.send(i).await.unwrap();
        pong_rx.recv().await.unwrap();
    }
    let d = t0.elapsed();
    ponger.await.unwrap();
    println!("pingpong: {:.1} ns/switch", d.as_nanos() as f64 / (2.0 * n as f64));
}

async fn yield_(n: usize) {
    let t0 = Instant::now();
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
    let d = t0.elapsed();
    println!("yield: {:.1} ns/yield", d.as_nanos() as f64 / n as f64);
}

static STARTED: AtomicUsize = AtomicUsize::new(0);
static WOKE: AtomicUsize = AtomicUsize::new(0);

async fn sleep(n: usize) {
    let base = rss_bytes();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async {
                STARTED.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                WOKE.fetch_add(1, Ordering::Relaxed);
                1usize
            })
        })
        .collect();
    while STARTED.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
    }
    let peak = rss_bytes();
    let early = WOKE.load(Ordering::Relaxed); // > 0: not all asleep at once
    let mut woke = 0;
    for h in handles {
        woke += h.await.unwrap();
    }
    let d = t0.elapsed();
    check(woke, n, "sleep: woke");
    println!("sleep_wall: {:.3} s", d.as_secs_f64());
    println!("sleep_rss: {:.0} B/task", (peak - base) / n as f64);
    if early > 0 {
        println!("note: {} of {} tasks woke before the last one slept: not all asleep at once", early, n);
    }
}

async fn sem(n: usize) {
    let permits = Arc::new(Semaphore::new(100));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                1usize
            })
        })
        .collect();
    let mut held = 0;
    for h in handles {
        held += h.await.unwrap();
    }
    let d = t0.elapsed();
    check(held, n, "sem: held");
    println!("sem_wall: {:.3} s", d.as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let scenario = args.get(1).map(String::as_str).unwrap_or("");
    let known = ["spawn", "pingpong", "yield", "sleep", "sem"];
    if args.len() != 3 || n < 1 || !known.contains(&scenario) {
        eprintln!("usage: tokio_peer spawn|pingpong|yield|sleep|sem N");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        match scenario {
            "spawn" => spawn(n).await,
            "pingpong" => pingpong(n).await,
            "yield" => yield_(n).await,
            "sleep" => sleep(n).await,
            _ => sem(n).await,
        }
    });
}
