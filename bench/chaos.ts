// `npm run bench -- chaos [--json] [--seed 1] [--seconds 60] [--rate 2000] [--graph-rate 200] [--venue-rate 400]`
// Two runners (separate processes, real Postgres + Redis, each runner's Postgres traffic through its own TCP proxy)
// under an open-loop order load over the 8 default symbols and a graph write load, while a schedule drawn from
// `--seed` SIGKILLs a runner (then restarts it), SIGSTOPs one for a few seconds (its Postgres connections cut, as a
// partition would, so its shard locks lapse) and SIGCONTs it, or black-holes Postgres for every runner (the proxies
// hold every byte) for a few seconds. A venue feeds 24 markets (--venue-rate deltas/s in all, with 1% drops, 1%
// duplicates and reordering) to the gatherers and deduplicators meanwhile. Then the database, the graph and the
// market data are audited: acknowledged orders missing, duplicate trades, overfills, journal gaps, acknowledged
// vertex writes missing or older than acknowledged, published deltas missing from `orderbook_deltas`, stream entries
// missing or extra against their tables; plus each fault's recovery time (seconds until every symbol acknowledged a
// batch first sent after the fault) and the stale-owner writes refused. Redis database 12 is the bench's own.
import { randomUUID } from "node:crypto"
import { writeFileSync } from "node:fs"
import { parseArgs } from "node:util"
import type * as TesseraClient from "@tessera/client/TesseraClient"
import { prng } from "@tessera/platform/Random"
import { Effect, Schedule } from "effect"
import { Redis } from "ioredis"
import type { SeedApi } from "../actors/api.ts"
import { startVenue } from "../actors/gatherer/venue.ts"
import { graphClient } from "../actors/proxy-partition/client.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import {
  admissionOf,
  productionBounds,
  type RunnerProcess,
  redisUrl,
  staleWrites,
  startCluster,
  startProcess
} from "../test/harness.ts"
import { parse } from "../test/promText.ts"
import { runLoad } from "./orderLoad.ts"
import { startProxies } from "./proxyProcess.ts"
import { auditMarketData, settleMarketData } from "./streamAudit.ts"
import { makeClients } from "./tps.ts"

type Client = TesseraClient.Client<SeedApi>

interface Fault {
  readonly kind: "kill" | "stop" | "blackhole"
  readonly runner: number
  /** Seconds after the load starts. */
  readonly atS: number
  /** Seconds the runner stays down (killed: until the restart begins; stopped: until SIGCONT). */
  readonly downS: number
}

const kinds: ReadonlyArray<Fault["kind"]> = ["kill", "stop", "blackhole"]

/**
 * Faults one at a time (one runner always up), each kind once in a seeded order and then drawn at random, until
 * `seconds - 8` (time to recover).
 */
const schedule = (seed: number, seconds: number): Array<Fault> => {
  const rand = prng(seed)
  const faults: Array<Fault> = []
  const order = [...kinds]
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  let at = 4 + rand() * 2
  for (let n = 0; ; n++) {
    const kind = n < order.length ? order[n] : kinds[Math.floor(rand() * kinds.length)]
    const downS = kind === "kill" ? 1 + rand() * 2 : kind === "stop" ? 4 + rand() * 4 : 3 + rand() * 3
    if (at + downS > seconds - 8) break
    faults.push({ kind, runner: rand() < 0.5 ? 0 : 1, atS: +at.toFixed(2), downS: +downS.toFixed(2) })
    // A restart takes a few seconds on its own; then leave the cluster time to settle before the next fault.
    at += downS + (kind === "kill" ? 6 : 2) + 4 + rand() * 4
  }
  return faults
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The key (database 0) held by the chaos run in progress on this Redis. */
const runLockKey = "tessera:bench:chaos:running"

/**
 * Waits (at most 15 minutes) until no other chaos run holds this Redis, then holds it for `holdMs` or until the
 * returned release. Every run flushes database 12 at its start and end, so two at once wipe each other's streams
 * and graph hot tier, and the audits then count acknowledged vertices lost and stream holes.
 */
const holdRunLock = async (holdMs: number, progress: (line: string) => void) => {
  const lock = new Redis(redisUrl)
  const token = randomUUID()
  const giveUpAt = Date.now() + 15 * 60_000
  let told = false
  while ((await lock.set(runLockKey, token, "PX", holdMs, "NX")) !== "OK") {
    if (Date.now() > giveUpAt) {
      lock.disconnect()
      throw new Error(`another chaos run still holds ${runLockKey} on ${redisUrl}`)
    }
    if (!told) progress("waiting for another chaos run on this Redis to finish")
    told = true
    await sleep(2000)
  }
  return async () => {
    // Only our own hold: past its expiry another run may hold the key.
    await lock.eval(
      "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
      1,
      runLockKey,
      token
    )
    lock.disconnect()
  }
}

/**
 * What a runner held just before a fault: shard locks, and the order-matching entities (one per symbol) active on
 * them. A victim holding no symbol recovers as soon as the next batch is answered. Null fields: no answer in 1 s.
 */
const holdings = async (runner: RunnerProcess) => {
  try {
    const response = await fetch(`${runner.url}/metrics`, { signal: AbortSignal.timeout(1000) })
    const samples = parse(await response.text())
    const find = (name: string, type?: string) =>
      samples.find((s) => s.name === name && (type === undefined || s.labels.type === type))?.value ?? 0
    return {
      runner: runner.name,
      shards: find("effect_cluster_shards"),
      symbols: find("effect_cluster_entities", "SymbolShard")
    }
  } catch {
    return { runner: runner.name, shards: null, symbols: null }
  }
}

export const run = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: "boolean" },
      seed: { type: "string" },
      seconds: { type: "string" },
      rate: { type: "string" },
      "graph-rate": { type: "string" },
      "venue-rate": { type: "string" }
    }
  })
  const venueRate = Number(values["venue-rate"] ?? "400")
  const graphRate = Number(values["graph-rate"] ?? "200")
  const seed = Number(values.seed ?? "1")
  const seconds = Number(values.seconds ?? "60")
  const rate = Number(values.rate ?? "2000")
  const symbols = defaultSymbols.map((s) => s.symbol)
  const progress = (line: string) => process.stderr.write(`${line}\n`)
  const faults = schedule(seed, seconds)
  progress(
    `chaos seed ${seed}: ${faults.map((f) => `${f.kind} runner-${f.runner} at ${f.atS}s for ${f.downS}s`).join("; ")}`
  )

  // Each runner slot's Postgres traffic goes through its own proxy: paused to black-hole storage, cut to sever a
  // stopped runner's sessions (its advisory locks go with them). They run in a process of their own, so this
  // process's load generation cannot delay the runners' storage (their shard-lock sessions included).
  const proxies = await startProxies([
    { host: "127.0.0.1", port: 5432 },
    { host: "127.0.0.1", port: 5432 }
  ])
  const viaProxy = (i: number, url: string) => url.replace("127.0.0.1:5432", `127.0.0.1:${proxies.ports[i]}`)
  // BENCH_RUNNER_ENV="TESSERA_SHARDS=64 ..." passes settings to every runner, to compare them under the same faults.
  const extra = Object.fromEntries(
    (process.env.BENCH_RUNNER_ENV ?? "")
      .split(/\s+/)
      .filter((pair) => pair.includes("="))
      .map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)])
  )
  // The bench's own Redis database: its streams are audited whole, so nothing else may write them.
  const chaosRedis = `${redisUrl}/12`
  // Long enough for the whole run (start, load, drain, settling); a run that dies early frees it at expiry.
  const releaseRunLock = await holdRunLock((seconds + 300) * 1000, progress)
  const redis = new Redis(chaosRedis)
  await redis.flushdb()
  const venue = await startVenue({ markets: 24, rate: venueRate, seed })
  // The runners get the deployed overload bounds (the harness relaxes them for tests).
  const feed = {
    ...productionBounds,
    TESSERA_VENUE_URL: `${venue.url}/?drop=0.01&dup=0.01&reorder=4`,
    TESSERA_GATHER_REPLICAS: "2",
    TESSERA_DEDUP_SHARDS: "8"
  }
  const cluster = await startCluster(2, {
    label: "bench_chaos",
    databaseUrl: viaProxy,
    env: { ...feed, ...extra, REDIS_URL: chaosRedis }
  })
  // Killed runners included, for BENCH_RUNNER_LOG.
  const everyRunner = [...cluster.runners]
  const envOf = (i: number) => ({
    ...feed,
    ...extra,
    DATABASE_URL: viaProxy(i, cluster.database.url),
    REDIS_URL: chaosRedis
  })
  // One client per runner slot; `up[i]` is false while runner i is killed or stopped, so the load goes elsewhere.
  const slots: Array<{ client: Client; close: () => Promise<void>; up: boolean }> = []
  try {
    for (const runner of cluster.runners) {
      const { clients, close } = await makeClients([runner.url])
      slots.push({ client: clients[0], close, up: true })
    }
    // Client i sends through runner i's gateway when it is up, else through the other one (picked per attempt).
    const routed = (i: number) =>
      ({
        "SymbolShard.PlaceBatch": (request: never) =>
          Effect.suspend(() => {
            const slot = slots[i].up ? slots[i] : (slots.find((s) => s.up) ?? slots[i])
            return slot.client["SymbolShard.PlaceBatch"](request)
          })
      }) as unknown as Client
    const clients = [routed(0), routed(1)]
    await runLoad({ clients, symbols, rate: 500, seconds: 4, tag: "warm" })

    const stale: Array<{ readonly runner: string; readonly writes: number | null }> = []
    const measured = faults.map(() => ({
      startedAt: 0,
      firstAck: new Map<number, number>(),
      held: [] as Array<Awaited<ReturnType<typeof holdings>>>
    }))
    const injector = (async () => {
      const start = Date.now()
      for (let n = 0; n < faults.length; n++) {
        const fault = faults[n]
        const wait = start + fault.atS * 1000 - Date.now()
        if (wait > 0) await sleep(wait)
        const slot = slots[fault.runner]
        const runner = cluster.runners[fault.runner]
        // A black hole hits every runner; the other faults hit one.
        measured[n].held = await Promise.all(
          (fault.kind === "blackhole" ? cluster.runners : [runner]).map((r) => holdings(r))
        )
        // Its count so far, before the process and its metrics are gone.
        if (fault.kind === "kill")
          stale.push({ runner: runner.name, writes: await staleWrites(runner.url).catch(() => null) })
        // The fault begins now, with nothing left to read first: a batch sent meanwhile and answered by the victim
        // before the signal would count as a recovery.
        measured[n].startedAt = Date.now()
        slot.up = false
        if (fault.kind === "kill") {
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s SIGKILL ${runner.name}`)
          await cluster.kill9(runner)
          await slot.close()
          await sleep(fault.downS * 1000)
          const restarted: RunnerProcess = await startProcess(`${runner.name.split("~")[0]}~${n}`, {
            env: envOf(fault.runner)
          })
          cluster.runners[fault.runner] = restarted
          everyRunner.push(restarted)
          const { clients: fresh, close } = await makeClients([restarted.url])
          slots[fault.runner] = { client: fresh[0], close, up: true }
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s restarted ${restarted.name}`)
        } else if (fault.kind === "stop") {
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s SIGSTOP ${runner.name}`)
          runner.child.kill("SIGSTOP")
          await proxies.command("cut", [fault.runner])
          await sleep(fault.downS * 1000)
          runner.child.kill("SIGCONT")
          slot.up = true
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s SIGCONT ${runner.name} (its Postgres sessions cut)`)
        } else {
          // Every runner's storage stops answering; the load keeps going at both (requests fail or time out).
          slot.up = true
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s black-hole Postgres`)
          await proxies.command("pause", [0, 1])
          await sleep(fault.downS * 1000)
          await proxies.command("resume", [0, 1])
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s Postgres answers again`)
        }
      }
    })()
    const graph = graphLoad(
      (i) => (slots[i].up ? slots[i] : (slots.find((s) => s.up) ?? slots[i])).client,
      graphRate,
      seconds,
      seed
    )
    const result = await runLoad({
      clients,
      symbols,
      rate,
      seconds,
      tag: "chaos",
      keepIds: true,
      timeoutMs: 1000,
      drainSeconds: 30,
      onAck: (symbol, at, sentAt) => {
        // Only batches first sent after a fault began count toward its recovery.
        for (const m of measured) {
          if (m.startedAt > 0 && sentAt > m.startedAt && !m.firstAck.has(symbol)) m.firstAck.set(symbol, at)
        }
      }
    })
    await injector
    const writes = await graph
    progress(`load done: ${result.acked} of ${result.offered} acked in ${result.seconds.toFixed(1)} s; auditing`)
    // Weight still in flight once the load has drained is work a gateway never finished (it refuses beside it).
    const admission = await Promise.all(
      cluster.runners.map(async (r) => ({ runner: r.name, ...(await admissionOf(r.url).catch(() => ({}))) }))
    )
    progress(`admission after the load: ${JSON.stringify(admission)}`)
    const graphAudit = await auditGraph(
      slots.find((s) => s.up)?.client ?? slots[0].client,
      writes.acked,
      writes.uncertain
    )

    // Per symbol: psql's output is read through a 1 MiB buffer, and one query for every order id overflows it.
    const stored = new Set<string>()
    for (const symbol of symbols) {
      for (const id of cluster.database.query(`SELECT order_id FROM orders WHERE symbol = '${symbol}'`).split("\n"))
        stored.add(`${symbol} ${id}`)
    }
    const lost = result.ackedIds.filter((key) => !stored.has(key)).length
    const duplicateTrades = Number(
      cluster.database.query("SELECT COUNT(*) - COUNT(DISTINCT (symbol, trade_id)) FROM trades")
    )
    const overfills = Number(
      cluster.database.query("SELECT COUNT(*) FROM orders WHERE filled_qty::numeric > qty::numeric")
    )
    // Retention deletes a prefix of each journal; what remains must be one unbroken sequence.
    const journalGaps = Number(
      cluster.database.query(
        `SELECT COUNT(*) FROM (SELECT seq, LAG(seq) OVER (PARTITION BY symbol ORDER BY seq) AS prev
           FROM symbol_journal) j WHERE prev IS NOT NULL AND seq <> prev + 1`
      )
    )
    for (const r of cluster.runners) stale.push({ runner: r.name, writes: await staleWrites(r.url).catch(() => null) })
    // The venue goes quiet; then every published delta must reach its table and every entry its stream.
    venue.pause(true)
    progress("venue quiet; auditing market data until it settles (at most 60 s)")
    const marketData = await settleMarketData(
      () => auditMarketData(cluster.database.url, redis, venue.marketNames, venue.lastSeqs(), symbols),
      60_000
    )
    const faultRows = faults.map((f, n) => {
      const m = measured[n]
      return {
        kind: f.kind,
        runner: f.runner,
        at_s: f.atS,
        down_s: f.downS,
        held: m.held,
        recovery_s:
          m.firstAck.size < symbols.length
            ? null
            : +((Math.max(...m.firstAck.values()) - m.startedAt) / 1000).toFixed(2)
      }
    })
    const summary = {
      bench: "chaos",
      seed,
      seconds,
      rate,
      offered: result.offered,
      acked: result.acked,
      lost,
      duplicate_trades: duplicateTrades,
      overfills,
      journal_gaps: journalGaps,
      graph_writes: { offered: writes.offered, acked: writes.acked.size, failed: writes.failed, ...graphAudit },
      market_data: { venue_rate: venueRate, published: venue.stats().published, ...marketData },
      stale_owner_writes: stale,
      admission_after_load: admission,
      faults: faultRows
    }
    const out = (line: string) => process.stdout.write(`${line}\n`)
    out(`chaos seed ${seed}, ${rate} orders/s for ${seconds} s over ${symbols.length} symbols, 2 runners`)
    out("fault     runner  at_s   down_s  recovery_s  victims held (shards, symbols)")
    for (const f of faultRows) {
      const held = f.held.map((h) => `${h.runner} ${h.shards ?? "?"}, ${h.symbols ?? "?"}`).join("; ")
      out(
        `${f.kind.padEnd(9)} ${String(f.runner).padEnd(7)} ${String(f.at_s).padEnd(6)} ${String(f.down_s).padEnd(7)} ${String(f.recovery_s ?? "never").padEnd(11)} ${held}`
      )
    }
    out(
      `acked ${result.acked} of ${result.offered}; lost ${lost}, duplicate trades ${duplicateTrades}, overfills ${overfills}, journal gaps ${journalGaps}`
    )
    out(
      `graph writes: ${writes.acked.size} vertices acked of ${writes.offered} puts (${writes.failed} failed); ` +
        `lost ${graphAudit.lost}, not the last acked value ${graphAudit.wrong_value}`
    )
    out(
      `market data: ${marketData.deltas} deltas and ${marketData.trades} trades stored; missing deltas ${marketData.missing_deltas}, ` +
        `stream holes ${marketData.stream_holes}, stream extra ${marketData.stream_extra} (settled in ${marketData.settled_s} s)`
    )
    out(`stale-owner writes refused: ${stale.map((s) => `${s.runner} ${s.writes ?? "?"}`).join(", ")}`)
    if (values.json) out(JSON.stringify(summary))
  } finally {
    for (const runner of cluster.runners) runner.child.kill("SIGCONT")
    // BENCH_RUNNER_LOG=/tmp/chaos keeps each runner's stdout and stderr as /tmp/chaos-<runner>.log, for diagnosis.
    const logPrefix = process.env.BENCH_RUNNER_LOG
    if (logPrefix) for (const r of everyRunner) writeFileSync(`${logPrefix}-${r.name}.log`, r.output())
    await Promise.all(slots.map((s) => s.close().catch(() => undefined)))
    await cluster.stop()
    await proxies.close()
    await venue.close()
    await redis.flushdb()
    redis.disconnect()
    await releaseRunLock()
  }
}

/** Vertices the graph load writes, each one put at a time, so its newest acknowledged value is well defined. */
const graphVertices = 2000

/**
 * Puts `{ n }` (n counting up over the run) at `rate` puts/s for `seconds`, through `clientOf(worker)`, one put per
 * vertex at a time; returns the last acknowledged `n` of each vertex, and the vertices with a put that failed or
 * timed out (it may still land later, so their value is not audited, only their presence).
 */
const graphLoad = async (clientOf: (worker: number) => Client, rate: number, seconds: number, seed: number) => {
  const acked = new Map<string, number>()
  const uncertain = new Set<string>()
  const busy = new Set<string>()
  const rand = prng(seed + 1)
  let next = 0
  let offered = 0
  let failed = 0
  const workers = 16
  const end = Date.now() + seconds * 1000
  const interval = (workers * 1000) / Math.max(1, rate)
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (Date.now() < end) {
        const started = Date.now()
        const id = `chaos-v${Math.floor(rand() * graphVertices)}`
        if (!busy.has(id)) {
          busy.add(id)
          const value = ++next
          offered++
          const exit = await Effect.runPromiseExit(
            graphClient(clientOf(w % 2) as never)
              .put(id, { n: value })
              .pipe(Effect.timeout("1 second"))
          )
          if (exit._tag === "Success") acked.set(id, value)
          else {
            failed++
            uncertain.add(id)
          }
          busy.delete(id)
        }
        const wait = interval - (Date.now() - started)
        if (wait > 0) await sleep(wait)
      }
    })
  )
  return { acked, uncertain, offered, failed }
}

/** Reads every acknowledged vertex back: missing, or (all its puts answered) not holding its last acknowledged value. */
const auditGraph = async (client: Client, acked: ReadonlyMap<string, number>, uncertain: ReadonlySet<string>) => {
  const graph = graphClient(client as never)
  const ids = [...acked.keys()]
  let lost = 0
  let wrongValue = 0
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100)
    const found = await Effect.runPromise(
      graph.batchGet(chunk).pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("500 millis") }))
    )
    for (let j = 0; j < chunk.length; j++) {
      const value = found[j]?.n
      if (typeof value !== "number") lost++
      else if (!uncertain.has(chunk[j]) && value !== acked.get(chunk[j])) wrongValue++
    }
  }
  return { lost, wrong_value: wrongValue }
}
