// `npm run bench -- tps [--json] [--rates 1000,5000,5000,5000,10000,20000,40000,40000] [--seconds 10] [--runners 2] [--inflight 1]
//   [--transport websocket|http] [--route owner|spread] [--api many|batch|many,batch] [--warmup 15]`
// (--api: how orders travel. many, the default: one `Orders.PlaceMany` per gateway in flight at a time, carrying
// every queued order of the symbols routed to that gateway, one entry per symbol; batch: one
// `SymbolShard.PlaceBatch` per symbol in flight. A list runs the sweep once per API, alternating at each step, so
// the two are measured side by side in one run; the summary's top-level figures are the first API's.)
// (--warmup: seconds of 5K orders/s through each API before the sweep, after the shards are activated; a rate listed
// several times is measured that many times, and the summary's p99_ms_at_5k is the median of the 5K steps' p99)
// (websocket: one multiplexed connection per gateway, the default; owner: each symbol's orders go to the gateway of the runner hosting its shard, found after the warm-up
//   with Probe.Where on the same entity id (same shard), the default; spread: symbol i through gateway i mod n, so
//   about half the batches take an extra runner-to-runner hop: +6-8 ms p50 at 5K/s on 2 runners)
// (--inflight: PlaceBatch messages in flight per symbol, default 1, or PlaceMany requests per gateway, default 2 (the
// second only with 64 orders waiting: see runLoadMany); orders arriving meanwhile join the next request)
// Runners as separate processes on the real Postgres (fresh database) and Redis; an open-loop order load over the
// 8 default symbols through the gateways at fixed arrival rates; acknowledged (durable) orders/s and latency from
// the scheduled send time per step; and, as the limit to compare with, raw batched INSERT rows/s of the same
// Postgres measured in the same run.
import { parseArgs } from "node:util"
import { PgClient } from "@effect/sql-pg"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { pgPoolConfig } from "@tessera/runtime/storage"
import { Effect, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { SeedApi } from "../actors/api.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import { startCluster } from "../test/harness.ts"
import { percentile, runLoad, runLoadMany } from "./orderLoad.ts"
import { advanceWhile, type Progress, progress } from "./progress.ts"

export const makeClients = async (
  urls: ReadonlyArray<string>,
  transport: TesseraClient.ClientOptions["transport"] = "websocket"
) => {
  const scope = await Effect.runPromise(Scope.make())
  const clients = await Promise.all(
    urls.map((url) =>
      Effect.runPromise(Effect.provideService(TesseraClient.make(SeedApi, { url, transport }), Scope.Scope, scope))
    )
  )
  return { clients, close: () => Effect.runPromise(Scope.close(scope, Effect.void as never)) }
}

/**
 * For each symbol, the index of the client whose gateway runs on the runner hosting the symbol's shard: a Probe
 * entity with the same id lives in the same shard (same shard group), and Probe.Where names its runner.
 */
const ownerRoute = async (
  clients: ReadonlyArray<TesseraClient.Client<SeedApi>>,
  symbols: ReadonlyArray<string>,
  runners: ReadonlyArray<{ readonly runnerPort: number }>
): Promise<Array<number>> => {
  const route: Array<number> = []
  for (let i = 0; i < symbols.length; i++) {
    const where = await Effect.runPromise(clients[0]["Probe.Where"]({ entityId: symbols[i], payload: {} }))
    const owner = runners.findIndex((r) => where.runner.endsWith(`:${r.runnerPort}`))
    route.push(owner >= 0 && owner < clients.length ? owner : i % clients.length)
  }
  return route
}

/** Raw batched INSERT rows/s into a table shaped like `orders`, 1000 rows per statement, one connection. */
const pgRowsPerSecond = (url: string, seconds: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS bench_rows (symbol TEXT NOT NULL, order_id BIGINT NOT NULL, account TEXT NOT NULL,
      client_order_id TEXT NOT NULL, side TEXT NOT NULL, price TEXT, qty TEXT NOT NULL, status TEXT NOT NULL,
      PRIMARY KEY (symbol, order_id))`
    let id = 0
    const start = performance.now()
    while (performance.now() - start < seconds * 1000) {
      const rows = Array.from({ length: 1000 }, () => {
        id++
        return {
          symbol: "BENCH",
          order_id: id,
          account: `a${id % 97}`,
          client_order_id: `c${id}`,
          side: "buy",
          price: "100.00",
          qty: "1",
          status: "open"
        }
      })
      yield* sql.withTransaction(sql`INSERT INTO bench_rows ${sql.insert(rows as never)}`)
    }
    return id / ((performance.now() - start) / 1000)
  }).pipe(Effect.provide(PgClient.layer(pgPoolConfig({ url: Redacted.make(url) }))), Effect.scoped)

export const run = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: "boolean" },
      rates: { type: "string" },
      seconds: { type: "string" },
      runners: { type: "string" },
      inflight: { type: "string" },
      transport: { type: "string" },
      route: { type: "string" },
      api: { type: "string" },
      warmup: { type: "string" }
    }
  })
  const apis = (values.api ?? "many").split(",")
  for (const api of apis) {
    if (api !== "many" && api !== "batch") {
      throw new Error(
        `--api: expected many, batch or a comma-separated list of them, got ${JSON.stringify(values.api)}`
      )
    }
  }
  // 40K twice: the first saturating step measures the climb from 20K (queues and batches growing: 23,930 acked/s,
  // p99 8.3 s in one run), the second the steady state the system settles in (39,976 acked/s, p99 11.9 ms, same run).
  const rates = (values.rates ?? "1000,5000,5000,5000,10000,20000,40000,40000").split(",").map(Number)
  const seconds = Number(values.seconds ?? "10")
  const symbols = defaultSymbols.map((s) => s.symbol)
  const out = values.json ? process.stderr : process.stdout
  let bar: Progress | undefined
  const log = (line: string) => {
    bar?.clear()
    out.write(`${line}\n`)
  }

  const cluster = await startCluster(Number(values.runners ?? "2"), { label: "bench_tps" })
  try {
    const transport = values.transport === "http" ? "http" : "websocket"
    const { clients, close } = await makeClients(
      cluster.runners.map((r) => r.url),
      transport
    )
    try {
      // Warm up: activate every shard and let the runners settle their shard assignments.
      await runLoad({ clients, symbols, rate: 500, seconds: 4, tag: "warm" })
      const routing = values.route === "spread" ? "spread" : "owner"
      const route = routing === "owner" ? await ownerRoute(clients, symbols, cluster.runners) : undefined
      if (route !== undefined) log(`symbol -> runner: ${symbols.map((s, i) => `${s} ${route[i]}`).join(", ")}`)
      // The Postgres baseline before the warm-up, which absorbs its aftermath (several hundred thousand rows of dirty
      // pages and WAL for the background writer: the first step right after it measured p99 59-71 ms at 5K/s).
      const pgRows = await Effect.runPromise(pgRowsPerSecond(cluster.database.url, 3))
      log(`raw batched INSERT (1000 rows/statement, 1 connection): ${Math.round(pgRows)} rows/s`)
      // Then load for a while through each API (steady state: optimised code, warm connections and caches; the first
      // 5K/s step after a 4 s warm-up alone measured p50 12 ms, the next ones 2.5-4 ms).
      for (const api of apis) {
        const warm = { clients, symbols, rate: 5000, seconds: Number(values.warmup ?? "15"), tag: `warm${api}`, route }
        await (api === "many" ? runLoadMany(warm) : runLoad({ ...warm, maxInFlight: 1 }))
      }
      log(`api    offered/s  acked/s   p50 ms   p99 ms   p99.9 ms`)
      const steps: Array<Record<string, number | string>> = []
      // Progress on stderr: seconds of offered load over the sweep, with the step under way.
      const runs = rates.flatMap((rate) => apis.map((api) => ({ rate, api })))
      const sweep = progress("tps sweep", { total: runs.length * seconds, unit: "s" })
      bar = sweep
      for (const [index, { rate, api }] of runs.entries()) {
        sweep.note(`step ${index + 1}/${runs.length}: ${rate}/s offered (${api})`)
        const load = {
          clients,
          symbols,
          rate,
          seconds,
          tag: `s${rate}${api}`,
          drainSeconds: 20,
          // No retry while the step runs: past saturation the queue (and latency) grows, and re-sending requests
          // that are still being processed would measure the client's retry storm, not the runners.
          timeoutMs: 30_000,
          maxInFlight: values.inflight === undefined ? (api === "many" ? 2 : 1) : Number(values.inflight),
          route
        }
        const r = await advanceWhile(sweep, index * seconds, seconds, () =>
          api === "many" ? runLoadMany(load) : runLoad(load)
        )
        const step = {
          api,
          offered_per_s: rate,
          acked_per_s: Math.round(r.acked / r.seconds),
          acked: r.acked,
          offered: r.offered,
          p50_ms: +percentile(r.latenciesMs, 50).toFixed(2),
          p99_ms: +percentile(r.latenciesMs, 99).toFixed(2),
          p999_ms: +percentile(r.latenciesMs, 99.9).toFixed(2)
        }
        steps.push(step)
        log(
          `${api.padEnd(5)} ${String(rate).padStart(9)} ${String(step.acked_per_s).padStart(8)} ${String(step.p50_ms).padStart(8)} ${String(step.p99_ms).padStart(8)} ${String(step.p999_ms).padStart(10)}`
        )
      }
      sweep.done()
      const first = steps.filter((s) => s.api === apis[0])
      // A rate listed several times (`--rates 5000,5000,5000`) is measured that many times: the summary takes the
      // median of its steps' p99 (this machine's noise moves a single step's p99 by a factor of 4).
      const at5k = first
        .filter((s) => s.offered_per_s === 5000)
        .map((s) => s.p99_ms as number)
        .sort((a, b) => a - b)
      const summary = {
        bench: "tps",
        max_tps: Math.max(...first.map((s) => s.acked_per_s as number)),
        p99_ms_at_5k: at5k.length === 0 ? null : at5k[Math.floor((at5k.length - 1) / 2)],
        pg_rows_per_s: Math.round(pgRows),
        api: apis[0],
        runners: cluster.runners.length,
        route: routing,
        symbols: symbols.length,
        steps
      }
      if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
    } finally {
      await close()
    }
  } finally {
    await cluster.stop()
  }
}
