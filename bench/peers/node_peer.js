// Node peer of bench/bench_core.c: the same scenarios and keys, plain JS
// with Node's own modules only (no npm packages).
//
//   node node_peer.js spawn N     N async functions, each of which first
//                                 awaits once so that all exist before any
//                                 body runs (an async function otherwise
//                                 runs at once, inside the call), then
//                                 Promise.all waits for all      ns/task
//   node node_peer.js pingpong N  two async functions bouncing a message
//                                 through two 1-slot queues (Node has
//                                 none: Slot below, promises)  ns/switch
//   node node_peer.js yield N     a lone async function awaiting
//                                 setImmediate (timers/promises): one turn
//                                 of the event loop                ns/yield
//   node node_peer.js sleep N     N async functions each awaiting
//                                 setTimeout(1000) (timers/promises), all
//                                 asleep at once: wall s; resident B/task
//                                 once every one has started
//   node node_peer.js sem N       N async functions through a 100-permit
//                                 semaphore (Semaphore below: a counter and
//                                 a FIFO of resolvers), each holding it for
//                                 setTimeout(1): wall s
'use strict';
const fs = require('node:fs');
const timers = require('node:timers/promises');

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function rssBytes() {
  const f = fs.readFileSync('/proc/self/statm', 'utf8').split(' ');
  return Number(f[1]) * 4096;
}

function check(got, n, what) {
  if (got !== n) {
    process.stderr.write(`node_peer: ${what}: ${got} of ${n}\n`);
    process.exit(1);
  }
}

async function spawn(n) {
  let ran = 0;
  async function nothing() {
    await null;
    ran++;
  }
  const t0 = now();
  const tasks = new Array(n);
  for (let i = 0; i < n; i++) tasks[i] = nothing();
  const before = ran;
  await Promise.all(tasks);
  const t1 = now();
  check(before, 0, 'spawn: ran early');
  check(ran, n, 'spawn: ran');
  console.log(`spawn: ${((t1 - t0) * 1e9 / n).toFixed(1)} ns/task`);
}

// A bounded FIFO of one item, as asyncio.Queue(maxsize=1).
class Slot {
  constructor() {
    this.full = false;
    this.item = undefined;
    this.getter = null; // resolve of the task waiting to get
    this.putter = null; // resolve of the task waiting to put
  }
  async put(item) {
    while (this.full) await new Promise((r) => { this.putter = r; });
    this.item = item;
    this.full = true;
    if (this.getter) { const r = this.getter; this.getter = null; r(); }
  }
  async get() {
    while (!this.full) await new Promise((r) => { this.getter = r; });
    const item = this.item;
    this.full = false;
    this.item = undefined;
    if (this.putter) { const r = this.putter; this.putter = null; r(); }
    return item;
  }
}

async function pingpong(n) {
  const ping = new Slot();
  const pong = new Slot();
  async function ponger() {
    for (let i = 0; i < n; i++) await pong.put(await ping.get());
  }
  const task = ponger();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    await ping.put(i);
    await pong.get();
  }
  const t1 = now();
  await task;
  console.log(`pingpong: ${((t1 - t0) * 1e9 / (2 * n)).toFixed(1)} ns/switch`);
}

async function yield_(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) await timers.setImmediate();
  const t1 = now();
  console.log(`yield: ${((t1 - t0) * 1e9 / n).toFixed(1)} ns/yield`);
}

async function sleep(n) {
  let started = 0;
  let woke = 0;
  async function sleeper() {
    started++;
    await timers.setTimeout(1000);
    woke++;
  }
  const base = rssBytes();
  const t0 = now();
  const tasks = new Array(n);
  for (let i = 0; i < n; i++) tasks[i] = sleeper();
  check(started, n, 'sleep: started');
  const peak = rssBytes();
  await Promise.all(tasks);
  const t1 = now();
  check(woke, n, 'sleep: woke');
  console.log(`sleep_wall: ${(t1 - t0).toFixed(3)} s`);
  console.log(`sleep_rss: ${((peak - base) / n).toFixed(0)} B/task`);
}

class Semaphore {
  constructor(permits) {
    this.permits = permits;
    this.waiters = []; // FIFO of resolvers; head index below
    this.head = 0;
  }
  async acquire() {
    if (this.permits > 0 && this.head === this.waiters.length) {
      this.permits--;
      return;
    }
    await new Promise((r) => this.waiters.push(r));
  }
  release() {
    if (this.head < this.waiters.length) {
      const r = this.waiters[this.head];
      this.waiters[this.head++] = undefined;
      r(); // the permit passes straight to the first waiter
    } else {
      this.permits++;
    }
  }
}

async function sem(n) {
  const permits = new Semaphore(100);
  let held = 0;
  async function holder() {
    await permits.acquire();
    try {
      await timers.setTimeout(1);
      held++;
    } finally {
      permits.release();
    }
  }
  const t0 = now();
  const tasks = new Array(n);
  for (let i = 0; i < n; i++) tasks[i] = holder();
  await Promise.all(tasks);
  const t1 = now();
  check(held, n, 'sem: held');
  console.log(`sem_wall: ${(t1 - t0).toFixed(3)} s`);
}

const scenarios = { spawn, pingpong, yield: yield_, sleep, sem };
const run = scenarios[process.argv[2]];
const n = Number(process.argv[3]);
if (process.argv.length !== 4 || !run || !Number.isInteger(n) || n < 1) {
  process.stderr.write('usage: node node_peer.js spawn|pingpong|yield|sleep|sem N\n');
  process.exit(2);
}
run(n).catch((e) => {
  process.stderr.write(`node_peer: ${e.stack || e}\n`);
  process.exit(1);
});
