/**
 * Gap-free streams across failover (issue 17 part 1), on runner processes against the real Postgres and Redis
 * (Redis database 13, so no other test's streams mix in): orders to the symbol shards and a venue feeding gatherers
 * and deduplicators, the victim runner cut off from Redis (it keeps writing its tables, publishing nothing) and then
 * killed with -9. Each stream (`md:{symbol}:trades`, `md:book:{market}`) is then compared with its table (trades,
 * orderbook_deltas) entry by entry: no hole, no duplicate, same order, same payload. First while the venue is quiet
 * (the deduplicators' new owners get no copy, yet must republish what the dead owner wrote), then after more feed.
 */
import { execFileSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Redis } from "ioredis"
import { bookStreamMaxLen } from "../actors/gatherer/bookPublisher.ts"
import type { FleetStatus } from "../actors/gatherer/protocol.ts"
import type { Venue } from "../actors/gatherer/venue.ts"
import { streamMaxLen } from "../actors/symbol-shard/marketData.ts"
import { scopedVenue } from "./gatherNode.ts"
import { type freshDatabase, pausableProxy, redisUrl, scopedDatabase, scopedProcess, withClient } from "./harness.ts"
import { crossingOrder, orderLoad, symbols } from "./orders.ts"
import { parse } from "./promText.ts"

const streamsDb = 13

const fleet = (url: string) =>
  withClient(url, (client) => client["Gather.Status"]().pipe(Effect.timeout("5 seconds"))).pipe(
    Effect.orElseSucceed((): FleetStatus | undefined => undefined)
  )

const metricSum = (url: string, name: string, filter: (labels: Record<string, string>) => boolean = () => true) =>
  Effect.promise(async () => {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    return parse(text)
      .filter((s) => s.name === name && filter(s.labels))
      .reduce((n, s) => n + s.value, 0)
  })

/** Symbols with trades flushed by this runner (its `/metrics`). */
const symbolsOn = (url: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    return new Set(
      parse(text).flatMap((s) => (s.name === "tessera_trades_total" && s.value > 0 ? [s.labels.symbol] : []))
    )
  })

/** What one stream should hold (from its table) against what it holds, as comparable lines. */
interface Comparison {
  readonly key: string
  readonly table: ReadonlyArray<string>
  readonly stream: ReadonlyArray<string>
  /** Entries the stream keeps at least (`MAXLEN ~`): table rows before its first entry are trimmed, not holes. */
  readonly maxLen: number
}

/** Differences between a stream and its table: holes, extra or repeated entries, order, payload. */
const differences = (full: Comparison): Array<string> => {
  const out: Array<string> = []
  const first = full.stream.length >= full.maxLen ? full.table.indexOf(full.stream[0]) : -1
  const c = first > 0 ? { ...full, table: full.table.slice(first) } : full
  const inStream = new Set(c.stream)
  const inTable = new Set(c.table)
  const holes = c.table.filter((line) => !inStream.has(line))
  const extra = c.stream.filter((line) => !inTable.has(line))
  const repeated = c.stream.length - inStream.size
  if (holes.length > 0) out.push(`${c.key}: ${holes.length} hole(s), first ${holes[0]}`)
  if (extra.length > 0) out.push(`${c.key}: ${extra.length} entr(ies) not in the table, first ${extra[0]}`)
  if (repeated > 0) out.push(`${c.key}: ${repeated} repeated entr(ies)`)
  if (out.length === 0 && c.stream.join("\n") !== c.table.join("\n")) out.push(`${c.key}: out of order`)
  return out
}

// The harness's query keeps psql's default output buffer; whole tables need more.
const psqlRows = (db: ReturnType<typeof freshDatabase>, sql: string) =>
  execFileSync("psql", [db.url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { maxBuffer: 512 * 1024 * 1024 })
    .toString()
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => line.split("|"))

/** Every market's and symbol's stream against its table. */
const compareAll = (db: ReturnType<typeof freshDatabase>, redis: Redis, venue: Venue) =>
  Effect.promise(async () => {
    const comparisons: Array<Comparison> = []
    const deltas = new Map<string, Array<string>>()
    for (const [market, seq, ts, side, price, qty] of psqlRows(
      db,
      "SELECT market, seq, ts, side, price, qty FROM orderbook_deltas ORDER BY market, seq"
    )) {
      const line = [seq, ts, side, Number(price), Number(qty)].join(" ")
      const rows = deltas.get(market)
      if (rows === undefined) deltas.set(market, [line])
      else rows.push(line)
    }
    for (const market of venue.marketNames) {
      const entries = await redis.xrange(`md:book:${market}`, "-", "+")
      const stream = entries.map(([id, fields]) => {
        const d = JSON.parse(fields[fields.indexOf("d") + 1]) as Array<Array<number>>
        // The id is the seq: an entry under another id than its payload's seq is a mismatch too.
        return d.length === 1 && `${d[0][0]}-0` === id ? d[0].join(" ") : `id ${id} payload ${JSON.stringify(d)}`
      })
      comparisons.push({ key: `md:book:${market}`, table: deltas.get(market) ?? [], stream, maxLen: bookStreamMaxLen })
    }
    const trades = new Map<string, Array<string>>()
    for (const [symbol, id, price, qty, maker, taker] of psqlRows(
      db,
      "SELECT symbol, trade_id, price, qty, maker_order_id, taker_order_id FROM trades ORDER BY symbol, trade_id"
    )) {
      const line = [id, Number(price), Number(qty), maker, taker].join(" ")
      const rows = trades.get(symbol)
      if (rows === undefined) trades.set(symbol, [line])
      else rows.push(line)
    }
    for (const symbol of symbols) {
      const entries = await redis.xrange(`md:${symbol}:trades`, "-", "+")
      const stream = entries.map(([id, fields]) => {
        const f: Record<string, string> = {}
        for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1]
        return `${f.tradeId}-0` === id
          ? [f.tradeId, Number(f.price), Number(f.qty), f.maker, f.taker].join(" ")
          : `id ${id} tradeId ${f.tradeId}`
      })
      comparisons.push({ key: `md:${symbol}:trades`, table: trades.get(symbol) ?? [], stream, maxLen: streamMaxLen })
    }
    return comparisons
  })

/** Compares until every stream matches its table or the deadline passes; the differences left. */
const streamsMatch = (db: ReturnType<typeof freshDatabase>, redis: Redis, venue: Venue, withinMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + withinMs
    let left: Array<string> = []
    let comparisons: Array<Comparison> = []
    while (Date.now() < until) {
      comparisons = yield* compareAll(db, redis, venue)
      left = comparisons.flatMap(differences)
      if (left.length === 0) break
      yield* Effect.sleep("500 millis")
    }
    return { left, comparisons }
  })

/** Waits until each market's rows reach the venue's last seq without a hole (snapshots heal what nobody sent). */
const tableCaughtUp = (db: ReturnType<typeof freshDatabase>, venue: Venue, withinMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + withinMs
    let missing = Number.POSITIVE_INFINITY
    while (Date.now() < until) {
      const rows = new Map(
        psqlRows(db, "SELECT market, COUNT(*), MIN(seq), MAX(seq) FROM orderbook_deltas GROUP BY market").map(
          ([market, n, lo]) => [market, { n: Number(n), lo: Number(lo) }]
        )
      )
      const last = venue.lastSeqs()
      missing = 0
      for (let m = 0; m < venue.marketNames.length; m++) {
        const row = rows.get(venue.marketNames[m])
        missing += row === undefined ? last[m] : last[m] - row.lo + 1 - row.n
      }
      if (missing === 0) return
      yield* Effect.sleep("500 millis")
    }
    assert.strictEqual(missing, 0, "orderbook_deltas holds every seq the venue sent")
  })

/**
 * `quietFirst`: the venue goes quiet a second before the kill instead of at it, so no copy is in flight to the
 * victim's deduplicators (a cluster client retries those to the new owner, which activates it): only the
 * supervisor's round brings them back.
 */
const scenario = (quietFirst: boolean) =>
  Effect.gen(function* () {
    const db = yield* scopedDatabase("streamsfo")
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => new Redis(`${redisUrl}/${streamsDb}`)),
      (r) => Effect.sync(() => r.disconnect())
    )
    const clear = Effect.promise(async () => {
      const keys = await redis.keys("md:*")
      if (keys.length > 0) await redis.unlink(...keys)
    })
    yield* clear
    yield* Effect.addFinalizer(() => Effect.ignore(clear))
    const venue = yield* scopedVenue({ markets: 24, rate: 300, seed: 17 })
    // The victim reaches Redis through a proxy that can hold its traffic: its publishes then fail while its
    // inserts go on, the state a kill between commit and publish leaves behind, for many entries at once.
    const redisPort = Number(new URL(redisUrl).port || 6379)
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => pausableProxy({ host: new URL(redisUrl).hostname, port: redisPort })),
      (p) => Effect.promise(() => p.close())
    )
    const env = (redis: string) => ({
      DATABASE_URL: db.url,
      REDIS_URL: redis,
      TESSERA_VENUE_URL: `${venue.url}/?drop=0.01&dup=0.01&reorder=4`,
      TESSERA_GATHER_REPLICAS: "2",
      TESSERA_DEDUP_SHARDS: "8"
    })
    const survivor = yield* scopedProcess("streams-survivor", { env: env(`${redisUrl}/${streamsDb}`) })
    const victim = yield* scopedProcess("streams-victim", {
      env: env(`redis://127.0.0.1:${proxy.port}/${streamsDb}`)
    })
    const victimAddress = `127.0.0.1:${victim.runnerPort}`

    // Orders through the survivor's gateway, each batch retried with its keys until acknowledged (or the load stops):
    // trades on every symbol.
    const load = orderLoad({
      batch: (n) =>
        Array.from({ length: 10 }, (_, i) => crossingOrder(`s-${(n * 10 + i) % 3}`, `k${n}-${i}`, n * 10 + i)),
      pause: "30 millis",
      concurrency: "unbounded",
      untilAcknowledged: false
    })
    const loadFiber = yield* Effect.forkChild(withClient(survivor.url, load.run))

    // Deduplicators and symbol shards on both runners, all of them writing.
    let victimDedups = 0
    let victimSymbols = new Set<string>()
    const spreadBy = Date.now() + 60_000
    while (Date.now() < spreadBy) {
      const status = yield* fleet(survivor.url)
      victimSymbols = yield* symbolsOn(victim.url)
      victimDedups = status?.deduplicators.filter((d) => d.runner === victimAddress && d.written > 0).length ?? 0
      if (status?.deduplicators.length === 8 && victimDedups > 0 && victimSymbols.size > 0) break
      yield* Effect.sleep("500 millis")
    }
    assert.isAbove(victimDedups, 0, "deduplicators write on the victim")
    assert.isAbove(victimSymbols.size, 0, "symbol shards trade on the victim")

    // The victim keeps committing for 2 s without publishing, then dies; the venue goes quiet at that moment.
    // The victim's deduplicators' counters now: their next owners start from what was saved with their writes.
    const before = yield* fleet(survivor.url)
    const moved = before?.deduplicators.filter((d) => d.runner === victimAddress) ?? []
    assert.isAbove(moved.length, 0)
    proxy.pause()
    if (quietFirst) {
      yield* Effect.sleep("1 second")
      venue.pause(true)
      yield* Effect.sleep("1 second")
    } else {
      yield* Effect.sleep("2 seconds")
      venue.pause(true)
    }
    victim.child.kill("SIGKILL")
    yield* Effect.promise(() => victim.exited)
    // Orders go on through the failover (they bring the symbol shards back); no copy reaches the moved
    // deduplicators, only the supervisor's round does.
    yield* Effect.sleep("6 seconds")
    load.stop()
    yield* Fiber.join(loadFiber).pipe(Effect.timeout("30 seconds"))

    const quiet = yield* streamsMatch(db, redis, venue, 45_000)
    assert.deepStrictEqual(quiet.left, [], "after the kill, with the venue quiet: every stream matches its table")
    const deltaEntries = quiet.comparisons.filter((c) => c.key.startsWith("md:book:"))
    const tradeEntries = quiet.comparisons.filter((c) => c.key.endsWith(":trades"))
    assert.isAbove(
      deltaEntries.reduce((n, c) => n + c.stream.length, 0),
      1000
    )
    assert.isAbove(
      tradeEntries.reduce((n, c) => n + c.stream.length, 0),
      100
    )
    // The dead owner left committed entries unpublished, and the new owners put them in the streams.
    assert.isAbove(yield* metricSum(survivor.url, "tessera_dedup_republished_total"), 0, "deltas republished")
    assert.isAbove(yield* metricSum(survivor.url, "tessera_market_data_republished_total"), 0, "trades republished")
    // Counters survive the move (persisted in dedup_counters with each insert), not reset to zero.
    const after = yield* fleet(survivor.url)
    for (const d of moved) {
      const now = after?.deduplicators.find((a) => a.id === d.id)
      assert.isDefined(now, `${d.id} answers after the failover`)
      assert.isAtLeast(now!.written, d.written, `${d.id} written counter kept`)
      assert.isAtLeast(now!.copies, d.copies, `${d.id} copies counter kept`)
      assert.isAtLeast(now!.duplicates, d.duplicates, `${d.id} duplicates counter kept`)
    }

    // More feed on the new owners: live entries follow the republished ones without a hole.
    venue.pause(false)
    yield* Effect.sleep("4 seconds")
    venue.pause(true)
    yield* tableCaughtUp(db, venue, 40_000)
    const fed = yield* streamsMatch(db, redis, venue, 30_000)
    assert.deepStrictEqual(fed.left, [], "after more feed: every stream matches its table")
    for (const c of fed.comparisons.filter((c) => c.key.startsWith("md:book:"))) {
      assert.isAbove(c.stream.length, 0, `${c.key} has entries`)
    }
  }).pipe(Effect.scoped)

describe("streams across failover (runner processes, real Postgres + Redis)", () => {
  it.live(
    "after kill -9 under load (orders and venue) every stream holds its table's entries exactly once, in order",
    () => scenario(false),
    240_000
  )
  it.live(
    "after kill -9 under order load with the venue quiet, moved deduplicators republish without any copy",
    () => scenario(true),
    240_000
  )
})
