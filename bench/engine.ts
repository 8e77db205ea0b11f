// `npm run bench -- engine [--json] [--commands N] [--runs R] [--peer-runs R] [--no-peer]`
//
// Matching-engine throughput and per-command latency on one core, no I/O, against nodejs-order-book
// on the same pre-generated command streams. Scenarios:
//   exchange-core  one symbol, ~1,000 resting orders over ~750 price levels, 9% GTC, 3% IOC,
//                  6% cancel, 82% move, 1,000 accounts (the exchange-core benchmark's shape)
//   place-only     GTC orders that never cross: the book grows (insert path)
//   market-sweep   market orders each sweeping ~10 resting orders over a few levels
// Commands are generated before timing from a seeded RNG. Throughput (median of R runs) and latency
// (one performance.now() per command) are separate passes so the timer does not slow the ops/s pass.
import * as os from "node:os"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { prng } from "@tessera/platform/Random"
import { OrderBook as PeerBook } from "nodejs-order-book"
import { OrderBook } from "../actors/symbol-shard/engine/OrderBook.ts"

// ---- command streams -----------------------------------------------------------------------------

const OP_GTC = 0
const OP_IOC = 1
const OP_CANCEL = 2
const OP_MOVE = 3
const OP_MARKET = 4

interface Commands {
  readonly name: string
  /** Commands [0, setup) build the starting book and are not timed. */
  readonly setup: number
  readonly count: number
  readonly op: Uint8Array
  readonly side: Uint8Array
  readonly order: Int32Array
  readonly account: Int32Array
  readonly price: Float64Array
  readonly qty: Float64Array
  readonly ids: Array<string>
  readonly accounts: Array<string>
  readonly notes: Record<string, number | string>
}

const makeCommands = (name: string, total: number, nIds: number, nAccounts: number) => ({
  name,
  setup: 0,
  count: 0,
  op: new Uint8Array(total),
  side: new Uint8Array(total),
  order: new Int32Array(total),
  account: new Int32Array(total),
  price: new Float64Array(total),
  qty: new Float64Array(total),
  ids: Array.from({ length: nIds }, (_, i) => `o${i}`),
  accounts: Array.from({ length: nAccounts }, (_, i) => `a${i}`),
  notes: {} as Record<string, number | string>
})

const rng = prng

const CONFIG = { tick: "0.01", lot: "1" }
const MID = 1_000_000
const HALF_RANGE = Number(process.env.HR ?? 1000)
const TARGET_RESTING = 1000

/**
 * The exchange-core shape. The generator drives a reference book to know which orders are live,
 * so every cancel and move names an order that rests at that point of the stream.
 */
export const exchangeCore = (n: number, seed = 1): Commands => {
  const rand = rng(seed)
  const ri = (k: number) => Math.floor(rand() * k)
  const maxIds = TARGET_RESTING + Math.ceil(n * 0.2) + 1000
  const c = makeCommands("exchange-core", TARGET_RESTING + n, maxIds, 1000)
  const book = new OrderBook(CONFIG)
  const live = new Int32Array(maxIds)
  const livePos = new Int32Array(maxIds).fill(-1)
  const liveSide = new Uint8Array(maxIds)
  const livePrice = new Float64Array(maxIds)
  let liveCount = 0
  let nextId = 0
  let i = 0
  const idNum = (slot: number) => Number(book.orderId(slot).slice(1))
  const addLive = (o: number) => {
    livePos[o] = liveCount
    live[liveCount++] = o
  }
  const dropLive = (o: number) => {
    const p = livePos[o]
    if (p === -1) return
    const last = live[--liveCount]
    live[p] = last
    livePos[last] = p
    livePos[o] = -1
  }
  // Reads the book's events to keep the live set, and the moved/placed order's resting price.
  const track = (o: number, price: number) => {
    let selfDone = false
    for (let e = 0; e < book.eventCount; e++) {
      if (book.eventKind[e] === 4) {
        const id = idNum(book.eventOrder[e])
        if (id === o) selfDone = true
        dropLive(id)
      } else if (book.eventKind[e] === 2) {
        selfDone = true
      }
    }
    if (!selfDone) {
      if (livePos[o] === -1) addLive(o)
      livePrice[o] = price
    }
  }
  const mid = () => {
    const b = book.bestPrice(0)
    const a = book.bestPrice(1)
    if (b === 0 && a === 0) return MID
    if (b === 0) return a - 1
    if (a === 0) return b + 1
    return Math.floor((a + b) / 2)
  }
  const push = (op: number, side: number, o: number, price: number, qty: number) => {
    c.op[i] = op
    c.side[i] = side
    c.order[i] = o
    c.account[i] = ri(1000)
    c.price[i] = price
    c.qty[i] = qty
    i++
    const id = c.ids[o]
    const acct = c.accounts[c.account[i - 1]]
    if (op === OP_GTC || op === OP_IOC) {
      book.placeRaw(id, acct, side, 0, op === OP_GTC ? 0 : 1, false, price, qty)
      liveSide[o] = side
      track(o, price)
    } else if (op === OP_CANCEL) {
      book.cancel(id)
      track(o, 0)
    } else {
      book.moveRaw(id, price, 0)
      track(o, price)
    }
  }
  // A price up to 3 ticks through the opposite best (or near mid when that side is empty).
  const through = (side: number, m: number) => {
    const best = book.bestPrice(side === 0 ? 1 : 0)
    if (best === 0) return side === 0 ? m + 1 : m - 1
    return side === 0 ? best + ri(4) : best - ri(4)
  }
  const passivePrice = (side: number, m: number) => (side === 0 ? m - 1 - ri(HALF_RANGE) : m + 1 + ri(HALF_RANGE))

  for (let k = 0; k < TARGET_RESTING; k++) {
    const side = ri(2)
    push(OP_GTC, side, nextId, passivePrice(side, MID), 1 + ri(100))
    nextId++
  }
  c.setup = i
  let mix = [0, 0, 0, 0]
  let levelSum = 0
  let restingSum = 0
  let samples = 0
  for (let k = 0; k < n; k++) {
    const r = rand() * 100
    let op = r < 9 ? OP_GTC : r < 12 ? OP_IOC : r < 18 ? OP_CANCEL : OP_MOVE
    // Keep the book near its target size: trade a cancel for a GTC (or back) when it drifts.
    if (op === OP_CANCEL && liveCount < TARGET_RESTING) op = OP_GTC
    else if (op === OP_GTC && liveCount > TARGET_RESTING * 1.05) op = OP_CANCEL
    if ((op === OP_CANCEL || op === OP_MOVE) && liveCount === 0) op = OP_GTC
    if (op === OP_GTC && nextId >= maxIds) op = OP_MOVE
    const m = mid()
    if (op === OP_GTC) {
      const side = ri(2)
      // One GTC in five is aggressive: priced through the opposite best, it trades on arrival.
      const price = rand() < 0.2 ? through(side, m) : passivePrice(side, m)
      push(OP_GTC, side, nextId++, Math.max(1, price), 1 + ri(100))
    } else if (op === OP_IOC) {
      const side = ri(2)
      const price = through(side, m)
      push(OP_IOC, side, nextId++, Math.max(1, price), 1 + ri(50))
    } else if (op === OP_CANCEL) {
      push(OP_CANCEL, 0, live[ri(liveCount)], 0, 0)
    } else {
      const o = live[ri(liveCount)]
      const side = liveSide[o]
      // Small moves around the current price, mostly staying passive; the few that cross trade.
      let price = livePrice[o] + (ri(2) === 0 ? -1 : 1) * (1 + ri(8))
      if (side === 0) price = Math.max(m - HALF_RANGE, Math.min(price, m + 2))
      else price = Math.min(m + HALF_RANGE, Math.max(price, m - 2))
      if (price === livePrice[o]) price += side === 0 ? -1 : 1
      push(OP_MOVE, side, o, Math.max(1, price), 0)
    }
    mix[op]++
    if ((k & 1023) === 0) {
      levelSum += book.levelCount(0) + book.levelCount(1)
      restingSum += liveCount
      samples++
    }
  }
  c.count = i
  c.notes.avg_resting_orders = Math.round(restingSum / samples)
  c.notes.avg_levels = Math.round(levelSum / samples)
  c.notes.trades = book.tradeSeq
  mix = mix.map((x) => Math.round((x / n) * 1000) / 10)
  c.notes.mix = `GTC ${mix[0]}% IOC ${mix[1]}% cancel ${mix[2]}% move ${mix[3]}%`
  return c as Commands
}

/** GTC orders on both sides that never cross: the insert path. */
export const placeOnly = (n: number, seed = 2): Commands => {
  const rand = rng(seed)
  const c = makeCommands("place-only", n, n, 1000)
  for (let k = 0; k < n; k++) {
    const side = rand() < 0.5 ? 0 : 1
    c.op[k] = OP_GTC
    c.side[k] = side
    c.order[k] = k
    c.account[k] = Math.floor(rand() * 1000)
    c.price[k] = side === 0 ? MID - 1 - Math.floor(rand() * HALF_RANGE) : MID + 1 + Math.floor(rand() * HALF_RANGE)
    c.qty[k] = 1 + Math.floor(rand() * 100)
  }
  c.count = n
  return c as Commands
}

/** A deep ask side (untimed setup), then market buys that each take ~10 orders over a few levels. */
export const marketSweep = (n: number, seed = 3): Commands => {
  const rand = rng(seed)
  const resting = Math.max(1000, Math.min(500_000, n))
  const sweeps = Math.floor(resting / 12)
  const c = makeCommands("market-sweep", resting + sweeps, resting + sweeps, 1000)
  let total = 0
  for (let k = 0; k < resting; k++) {
    c.op[k] = OP_GTC
    c.side[k] = 1
    c.order[k] = k
    c.account[k] = Math.floor(rand() * 1000)
    // Four orders per level, worst level first: each new level lands on top of the side.
    c.price[k] = MID + 1 + Math.floor((resting - 1 - k) / 4)
    c.qty[k] = 1 + Math.floor(rand() * 10)
    total += c.qty[k]
  }
  c.setup = resting
  const perSweep = Math.floor((total / sweeps) * 0.95)
  for (let k = 0; k < sweeps; k++) {
    const j = resting + k
    c.op[j] = OP_MARKET
    c.side[j] = 0
    c.order[j] = j
    c.account[j] = Math.floor(rand() * 1000)
    c.qty[j] = perSweep
  }
  c.count = resting + sweeps
  c.notes.resting_before = resting
  c.notes.qty_per_sweep = perSweep
  return c as Commands
}

// ---- drivers -------------------------------------------------------------------------------------

interface Driver {
  readonly name: string
  reset(): void
  exec(c: Commands, i: number): number
  /** Executes commands [from, to); each driver has its own loop so that call sites stay monomorphic. */
  runRange(c: Commands, from: number, to: number): number
  /** Like runRange, writing each command's latency (µs) into `out`. */
  timeRange(c: Commands, from: number, to: number, out: Float64Array): void
  /** Resting (price, qty) per side, best first, to check both books end the same. */
  depth(): { bids: Array<[number, number]>; asks: Array<[number, number]> }
  trades(): number
}

const ownDriver = (): Driver => {
  let book = new OrderBook(CONFIG)
  let trades = 0
  return {
    name: "tessera",
    reset() {
      book = new OrderBook(CONFIG, 4096)
      trades = 0
    },
    exec(c, i) {
      const ids = c.ids
      switch (c.op[i]) {
        case OP_GTC:
          book.placeRaw(ids[c.order[i]], c.accounts[c.account[i]], c.side[i], 0, 0, false, c.price[i], c.qty[i])
          break
        case OP_IOC:
          book.placeRaw(ids[c.order[i]], c.accounts[c.account[i]], c.side[i], 0, 1, false, c.price[i], c.qty[i])
          break
        case OP_CANCEL:
          book.cancel(ids[c.order[i]])
          break
        case OP_MOVE:
          book.moveRaw(ids[c.order[i]], c.price[i], 0)
          break
        case OP_MARKET:
          book.placeRaw(ids[c.order[i]], c.accounts[c.account[i]], c.side[i], 1, 1, false, 0, c.qty[i])
          break
      }
      return book.eventCount
    },
    depth() {
      const read = (side: 0 | 1) => {
        const n = book.levelCount(side)
        const p = new Float64Array(n)
        const q = new Float64Array(n)
        book.depthInto(side, n, p, q)
        return Array.from(p, (x, k) => [x, q[k]] as [number, number])
      }
      return { bids: read(0), asks: read(1) }
    },
    trades: () => book.tradeSeq - trades,
    runRange(c, from, to) {
      let sink = 0
      for (let i = from; i < to; i++) sink += this.exec(c, i)
      return sink
    },
    timeRange(c, from, to, out) {
      let t = performance.now()
      for (let i = from; i < to; i++) {
        this.exec(c, i)
        const t1 = performance.now()
        out[i - from] = (t1 - t) * 1000
        t = t1
      }
    }
  }
}

const peerDriver = (): Driver => {
  let book = new PeerBook()
  let trades = 0
  return {
    name: "nodejs-order-book",
    reset() {
      book = new PeerBook()
      trades = 0
    },
    exec(c, i) {
      const id = c.ids[c.order[i]]
      const side = (c.side[i] === 0 ? "buy" : "sell") as any
      switch (c.op[i]) {
        case OP_GTC:
        case OP_IOC: {
          const r = book.limit({
            id,
            side,
            size: c.qty[i],
            price: c.price[i],
            timeInForce: (c.op[i] === OP_GTC ? "GTC" : "IOC") as any
          })
          trades += r.done.length
          return 1
        }
        case OP_CANCEL:
          book.cancel(id)
          return 1
        case OP_MOVE:
          book.modify(id, { price: c.price[i] })
          return 1
        case OP_MARKET: {
          const r = book.market({ side, size: c.qty[i] })
          trades += r.done.length
          return 1
        }
      }
      return 0
    },
    depth() {
      const [asks, bids] = book.depth()
      const sortBy = (a: Array<[number, number]>, dir: number) => [...a].sort((x, y) => dir * (x[0] - y[0]))
      return { bids: sortBy(bids, -1), asks: sortBy(asks, 1) }
    },
    trades: () => trades,
    runRange(c, from, to) {
      let sink = 0
      for (let i = from; i < to; i++) sink += this.exec(c, i)
      return sink
    },
    timeRange(c, from, to, out) {
      let t = performance.now()
      for (let i = from; i < to; i++) {
        this.exec(c, i)
        const t1 = performance.now()
        out[i - from] = (t1 - t) * 1000
        t = t1
      }
    }
  }
}

// ---- measurement ---------------------------------------------------------------------------------

// A full collection before each timed pass, so that no pass pays for the garbage of the one before
// (the other engine's, in particular).
v8.setFlagsFromString("--expose-gc")
const collectGarbage = vm.runInNewContext("gc") as () => void

const setupBook = (d: Driver, c: Commands) => {
  d.reset()
  for (let i = 0; i < c.setup; i++) d.exec(c, i)
  collectGarbage()
}

/**
 * One timed pass over the stream; returns ops/s by wall clock and by this process's CPU time (the
 * latter is what to read when other work shares the machine).
 */
const throughput = (d: Driver, c: Commands): { wall: number; cpu: number } => {
  setupBook(d, c)
  const n = c.count - c.setup
  const u0 = process.cpuUsage()
  const t0 = performance.now()
  const sink = d.runRange(c, c.setup, c.count)
  const ms = performance.now() - t0
  const u = process.cpuUsage(u0)
  if (sink < 0) console.log(sink)
  return { wall: (n / ms) * 1000, cpu: n / ((u.user + u.system) / 1e6) }
}

/** One pass with a clock read around every command; returns latencies in microseconds, sorted. */
const latencies = (d: Driver, c: Commands): Float64Array => {
  setupBook(d, c)
  const out = new Float64Array(c.count - c.setup)
  d.timeRange(c, c.setup, c.count, out)
  return out.sort()
}

/** Cost of the clock read itself (subtracted from nothing; reported so readers can judge). */
const timerCost = (): number => {
  const n = 1_000_000
  const out = new Float64Array(n)
  let t = performance.now()
  for (let k = 0; k < n; k++) {
    const t1 = performance.now()
    out[k] = (t1 - t) * 1000
    t = t1
  }
  out.sort()
  return out[n >> 1]
}

const pct = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d

interface ScenarioResult {
  readonly scenario: string
  readonly commands: number
  readonly ops_per_s: number
  readonly cpu_ops_per_s: number
  readonly runs_ops_per_s: Array<number>
  readonly p50_us: number
  readonly p99_us: number
  readonly p999_us: number
  readonly max_us: number
  readonly trades: number
  readonly peer_ops_per_s?: number
  readonly peer_cpu_ops_per_s?: number
  readonly peer_p50_us?: number
  readonly peer_p99_us?: number
  readonly peer_p999_us?: number
  readonly ratio?: number
  readonly cpu_ratio?: number
  readonly books_agree?: boolean
  readonly notes: Record<string, number | string>
}

const sameDepth = (a: ReturnType<Driver["depth"]>, b: ReturnType<Driver["depth"]>) =>
  JSON.stringify(a) === JSON.stringify(b)

const runScenario = (c: Commands, runs: number, peerRuns: number, log: (s: string) => void): ScenarioResult => {
  const own = ownDriver()
  const peer = peerDriver()
  const measured = c.count - c.setup
  log(`  ${c.name}: ${measured.toLocaleString("en-US")} commands (+${c.setup.toLocaleString("en-US")} setup)`)
  // Own and peer runs alternate so that both see the same machine conditions.
  const ownRuns: Array<{ wall: number; cpu: number }> = []
  const peerRuns_: Array<{ wall: number; cpu: number }> = []
  // Each engine's book is dropped after its pass, so the other engine's passes do not carry it.
  let trades = 0
  let ownDepth: ReturnType<Driver["depth"]> = { bids: [], asks: [] }
  let peerDepth: ReturnType<Driver["depth"]> = { bids: [], asks: [] }
  for (let r = 0; r < Math.max(runs, peerRuns); r++) {
    if (r < runs) {
      ownRuns.push(throughput(own, c))
      trades = own.trades()
      ownDepth = own.depth()
      own.reset()
    }
    if (r < peerRuns) {
      peerRuns_.push(throughput(peer, c))
      peerDepth = peer.depth()
      peer.reset()
    }
  }
  const lat = latencies(own, c)
  own.reset()
  const ownWall = median(ownRuns.map((x) => x.wall))
  const ownCpu = median(ownRuns.map((x) => x.cpu))
  let peerFields: Partial<ScenarioResult> = {}
  if (peerRuns > 0) {
    const agree = sameDepth(ownDepth, peerDepth)
    const plat = latencies(peer, c)
    peer.reset()
    const peerWall = median(peerRuns_.map((x) => x.wall))
    const peerCpu = median(peerRuns_.map((x) => x.cpu))
    peerFields = {
      peer_ops_per_s: Math.round(peerWall),
      peer_cpu_ops_per_s: Math.round(peerCpu),
      peer_p50_us: round(pct(plat, 0.5), 3),
      peer_p99_us: round(pct(plat, 0.99), 3),
      peer_p999_us: round(pct(plat, 0.999), 3),
      ratio: round(ownWall / peerWall),
      cpu_ratio: round(ownCpu / peerCpu),
      books_agree: agree
    }
  }
  return {
    scenario: c.name,
    commands: measured,
    ops_per_s: Math.round(ownWall),
    cpu_ops_per_s: Math.round(ownCpu),
    runs_ops_per_s: ownRuns.map((x) => Math.round(x.wall)),
    p50_us: round(pct(lat, 0.5), 3),
    p99_us: round(pct(lat, 0.99), 3),
    p999_us: round(pct(lat, 0.999), 3),
    max_us: round(lat[lat.length - 1], 1),
    trades,
    ...peerFields,
    notes: c.notes
  }
}

const intArg = (args: ReadonlyArray<string>, name: string, dflt: number): number => {
  const i = args.indexOf(name)
  if (i === -1) return dflt
  const v = Number(args[i + 1])
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} needs a non-negative integer`)
  return v
}

export async function run(args: ReadonlyArray<string>): Promise<void> {
  const json = args.includes("--json")
  const n = intArg(args, "--commands", 3_000_000)
  const runs = Math.max(1, intArg(args, "--runs", 5))
  const peerRuns = args.includes("--no-peer") ? 0 : Math.max(1, intArg(args, "--peer-runs", 3))
  const only = args.includes("--scenario") ? args[args.indexOf("--scenario") + 1] : undefined
  const log = (s: string) => process.stdout.write(`${s}\n`)

  log(`engine bench: node ${process.version}, ${runs} runs (peer ${peerRuns}), one core, no I/O`)
  log(`generating command streams (seeded, before timing)...`)
  const streams = [
    () => exchangeCore(n),
    () => placeOnly(Math.min(n, 1_000_000)),
    () => marketSweep(Math.min(n, 500_000))
  ]
  const names = ["exchange-core", "place-only", "market-sweep"]
  const results: Array<ScenarioResult> = []
  for (let s = 0; s < streams.length; s++) {
    if (only !== undefined && names[s] !== only) continue
    const c = streams[s]()
    results.push(runScenario(c, runs, peerRuns, log))
  }
  const timer = round(timerCost(), 3)

  const cols = [
    "scenario",
    "commands",
    "ops/s",
    "cpu ops/s",
    "p50 µs",
    "p99 µs",
    "p99.9 µs",
    "peer ops/s",
    "ratio",
    "agree"
  ]
  const rows = results.map((r) => [
    r.scenario,
    r.commands.toLocaleString("en-US"),
    r.ops_per_s.toLocaleString("en-US"),
    r.cpu_ops_per_s.toLocaleString("en-US"),
    String(r.p50_us),
    String(r.p99_us),
    String(r.p999_us),
    r.peer_ops_per_s === undefined ? "-" : r.peer_ops_per_s.toLocaleString("en-US"),
    r.ratio === undefined ? "-" : `${r.ratio}x`,
    r.books_agree === undefined ? "-" : r.books_agree ? "yes" : "NO"
  ])
  const widths = cols.map((h, k) => Math.max(h.length, ...rows.map((row) => row[k].length)))
  const line = (cells: Array<string>) =>
    cells.map((x, k) => (k === 0 ? x.padEnd(widths[k]) : x.padStart(widths[k]))).join("  ")
  log("")
  log(line(cols))
  log(widths.map((w) => "-".repeat(w)).join("  "))
  for (const row of rows) log(line(row))
  log("")
  for (const r of results) {
    const notes = Object.entries(r.notes)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")
    log(
      `${r.scenario}: trades=${r.trades.toLocaleString("en-US")}; runs ops/s ${r.runs_ops_per_s.join(", ")}${notes === "" ? "" : `; ${notes}`}`
    )
  }
  log(
    `ops/s is wall clock; cpu ops/s divides by this process's CPU time (read it when the machine is shared: load ${round(os.loadavg()[0])})`
  )
  log(`latency: one performance.now() per command in a separate pass; a clock read alone costs ~${timer} µs (p50)`)
  if (results.some((r) => r.books_agree === false)) log("WARNING: final books differ between engines")

  if (json) {
    const main = results.find((r) => r.scenario === "exchange-core") ?? results[0]
    const out = {
      bench: "engine",
      scenario: main.scenario,
      commands: main.commands,
      ops_per_s: main.ops_per_s,
      cpu_ops_per_s: main.cpu_ops_per_s,
      p50_us: main.p50_us,
      p99_us: main.p99_us,
      p999_us: main.p999_us,
      peer: "nodejs-order-book",
      peer_ops_per_s: main.peer_ops_per_s ?? null,
      ratio: main.ratio ?? null,
      cpu_ratio: main.cpu_ratio ?? null,
      loadavg_1m: round(os.loadavg()[0]),
      node: process.version,
      runs,
      timer_us: timer,
      scenarios: results
    }
    process.stdout.write(`${JSON.stringify(out)}\n`)
  }
}
