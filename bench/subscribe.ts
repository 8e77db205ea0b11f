// `npm run bench -- subscribe [--subscribers 1000] [--connections 50] [--rate 20] [--seconds 10] [--json]`
//
// One runner (fresh Postgres database, real Redis), `--subscribers` MarketData.Subscribe streams to one symbol over
// `--connections` WebSockets, entries XADDed to the symbol's trades stream at `--rate` per second for `--seconds`.
// Prints the delivery latency from publish (the entry's `ts`, taken just before its XADD) to receipt in this
// process, median / p99 / max, the delivered/published ratio (every subscriber must get every entry: 1.0), and the
// runner's read loops for the symbol (one per stream key, whatever the number of subscribers).
import { randomBytes } from "node:crypto"
import { parseArgs } from "node:util"
import { TesseraClient } from "@tessera/client"
import { Contract, MarketData } from "@tessera/contracts"
import { Effect, Fiber, Stream } from "effect"
import { Redis } from "ioredis"
import { SymbolShardContract } from "../actors/symbol-shard/protocol.ts"
import { freshDatabase, redisUrl, startProcess } from "../test/harness.ts"
import { parse, value } from "../test/promText.ts"

const api = Contract.api(MarketData.MarketDataContract)

const quantile = (sorted: Float64Array, q: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

export const run = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      subscribers: { type: "string", default: "1000" },
      connections: { type: "string", default: "50" },
      rate: { type: "string", default: "20" },
      seconds: { type: "string", default: "10" },
      json: { type: "boolean", default: false }
    }
  })
  const subscribers = Number(values.subscribers)
  const connections = Math.min(subscribers, Number(values.connections))
  const rate = Number(values.rate)
  const seconds = Number(values.seconds)
  // A symbol of this run's own (added through the gateway): other runs share the Redis.
  const symbol = `BENCH${randomBytes(3).toString("hex").toUpperCase()}-USDT`
  const key = `md:${symbol}:trades`
  const published = Math.round(rate * seconds)
  const expected = published * subscribers

  const redis = new Redis(redisUrl)
  const database = freshDatabase("subscribe_bench")
  const runner = await startProcess("subscribe-bench", { env: { DATABASE_URL: database.url, REDIS_URL: redisUrl } })
  const metric = async (name: string) => value(parse(await (await fetch(`${runner.url}/metrics`)).text()), name)

  const latencies = new Float64Array(expected)
  let delivered = 0
  let late = 0
  try {
    const program = Effect.gen(function* () {
      const admin = yield* TesseraClient.make(Contract.api(SymbolShardContract), { url: runner.url })
      yield* admin["Symbols.Add"]({ symbol, tick: "0.01", lot: "0.0001" })
      const clients = yield* Effect.forEach(Array.from({ length: connections }), () =>
        TesseraClient.make(api, { url: runner.url, transport: "websocket" })
      )
      const fibers = yield* Effect.forEach(Array.from({ length: subscribers }), (_, i) =>
        clients[i % connections]["MarketData.Subscribe"]({ symbols: [symbol] }).pipe(
          Stream.runForEach((event) =>
            Effect.sync(() => {
              if (event.stream !== key || event.kind !== "trade") return
              const at = Date.now() - Number(event.fields.ts)
              if (delivered < expected) latencies[delivered] = at
              else late++
              delivered++
            })
          ),
          Effect.forkChild
        )
      )
      yield* Effect.promise(async () => {
        const deadline = Date.now() + 120_000
        while ((await metric("tessera_md_subscriptions")) < subscribers) {
          if (Date.now() > deadline) throw new Error("the subscriptions did not open in time")
          await sleep(100)
        }
      })
      const readLoops = yield* Effect.promise(() => metric("tessera_md_read_loops"))
      const start = Date.now()
      yield* Effect.promise(async () => {
        for (let n = 1; n <= published; n++) {
          await sleep(start + (n * 1000) / rate - Date.now())
          await redis.xadd(key, `${n}-0`, "n", String(n), "ts", String(Date.now()))
        }
        // What is still on its way after the last publish, at most 30 s.
        const deadline = Date.now() + 30_000
        while (delivered < expected && Date.now() < deadline) await sleep(50)
      })
      const readLoopsStarted = yield* Effect.promise(() => metric("tessera_md_read_loops_started_total"))
      yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
      return { readLoops, readLoopsStarted, elapsed: (Date.now() - start) / 1000 }
    })
    const { readLoops, readLoopsStarted } = await Effect.runPromise(Effect.scoped(program))
    const sorted = latencies.slice(0, Math.min(delivered, expected)).sort()
    const result = {
      bench: "subscribe",
      subscribers,
      connections,
      rate_per_s: rate,
      seconds,
      published,
      expected_deliveries: expected,
      delivered,
      delivered_ratio: Number((delivered / expected).toFixed(6)),
      duplicates_or_extra: late,
      p50_ms: quantile(sorted, 0.5),
      p99_ms: quantile(sorted, 0.99),
      max_ms: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1],
      read_loops: readLoops,
      read_loops_started: readLoopsStarted
    }
    process.stdout.write(
      [
        `subscribe: ${subscribers} subscribers to ${symbol} over ${connections} WebSockets, one runner`,
        `  published          ${published} entries (${rate}/s for ${seconds} s)`,
        `  delivered          ${delivered} of ${expected} (ratio ${result.delivered_ratio})`,
        `  latency p50 / p99 / max   ${result.p50_ms} / ${result.p99_ms} / ${result.max_ms} ms (publish to receipt)`,
        `  read loops         ${readLoops} running (${readLoopsStarted} started) for ${subscribers} subscribers`,
        ""
      ].join("\n")
    )
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    runner.child.kill("SIGKILL")
    await runner.exited
    database.drop()
    await redis.del(key, `md:${symbol}:depth`)
    redis.disconnect()
  }
}
