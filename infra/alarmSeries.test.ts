// The alarms and the queue-depth scaling policy read series a real runner exports: a runner process on the real
// PostgreSQL and Redis takes orders, then its `/metrics` is scraped as the collector sidecar scrapes it. Every metric
// an alarm names is there, and the scaling metric is there under the name and with the `type` label the policy
// selects on (the collector adds only `stage`). And the scaling metric is the journal backlog too: with PostgreSQL
// black-holed, the orders waiting for their journal write show in it, and it falls back once they are durable.

import { Effect } from "effect"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { seedModules } from "../actors/index.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import { type Cluster, rawRpc, rpcRequest, runnerBehindPausablePg, startCluster } from "../test/harness.ts"
import { families, parse, value } from "../test/promText.ts"
import { alarms, queueDepthMetric } from "./observability.ts"
import { dev } from "./stage.ts"

let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(1, { label: "alarm_series" })
}, 120_000)
afterAll(() => cluster?.stop())

/** The runtime's metric names in a PromQL expression (`up` and other scrape-made series are Prometheus's own). */
const placeRequest = (id: string, symbol: string, clientOrderId: string) =>
  rpcRequest(id, "SymbolShard.Place", {
    entityId: symbol,
    payload: { account: "a", clientOrderId, side: "buy", price: "90", qty: "1" }
  })

const runtimeMetricsIn = (expr: string) => [
  ...new Set((expr.match(/\b(?:tessera|effect_cluster)_[a-z_]+/g) ?? []).map((m) => m.replace(/_bucket$/, "")))
]

describe("the series the alarms and the scaling policy read (a runner process, real Postgres + Redis)", () => {
  it("are exported at /metrics once the runner has taken orders", async () => {
    const { url } = cluster.runners[0]
    for (const [i, { symbol }] of defaultSymbols.slice(0, 2).entries()) {
      const { lines } = await rawRpc(url, placeRequest(String(i), symbol, `s-${i}`))
      assert.strictEqual(lines[0]?.exit?._tag, "Success", JSON.stringify(lines))
    }
    const text = await (await fetch(`${url}/metrics`)).text()
    const exported = new Set(families(text).keys())
    // A labelled family shows no series before its first update (no refusal yet, no deduplicator): the modules
    // declare those names, and the runtime's own families must be in the scrape itself.
    const declared = new Set(seedModules.flatMap((module) => module.metrics ?? []))
    for (const alarm of alarms(dev("test"))) {
      const names = runtimeMetricsIn(alarm.expr)
      assert.isNotEmpty(names, alarm.name)
      for (const name of names) {
        assert.isTrue(exported.has(name) || declared.has(name), `${alarm.name}: ${name} is not exported`)
      }
    }
    for (const name of ["tessera_gateway_request_duration_seconds", "tessera_gateway_requests_total"]) {
      assert.isTrue(exported.has(name), `${name} in the scrape`)
    }
    for (const name of ["tessera_shards_held", "effect_cluster_runners", "effect_cluster_runners_healthy"]) {
      assert.isTrue(exported.has(name), `${name} in the scrape`)
    }
    // The scaling metric: one series per entity type; orders make the SymbolShard one.
    const depth = parse(text).filter((s) => s.name === queueDepthMetric.name)
    const shard = depth.find((s) => s.labels[queueDepthMetric.typeDimension] === queueDepthMetric.entityType)
    assert.isDefined(shard, `${queueDepthMetric.name}{type="SymbolShard"} in ${JSON.stringify(depth)}`)
    assert.isAtLeast(shard?.value ?? -1, 0)
    // The collector's stage label must not clash with one the runtime already sets.
    assert.notProperty(shard?.labels ?? {}, queueDepthMetric.stageDimension)
  }, 120_000)

  it(
    "counts orders waiting for their journal write in the scaling metric, and drops once they are durable",
    () =>
      Effect.gen(function* () {
        const { db, pg, runner } = yield* runnerBehindPausablePg("queue_depth", {
          // Long enough that neither the journal's deadline, the shard's backlog bound nor the shard locks' refresh
          // ends the wait first.
          TESSERA_JOURNAL_WRITE_TIMEOUT: "60 seconds",
          TESSERA_SHARD_MAX_QUEUE_DELAY: "60 seconds",
          TESSERA_REQUEST_TIMEOUT_MS: "60000",
          TESSERA_SHARD_LOCK_REFRESH: "30 seconds",
          TESSERA_SHARD_LOCK_EXPIRATION: "120 seconds"
        })
        // Runs first of the finalizers: PostgreSQL answers again before the runner and the proxy go.
        yield* Effect.addFinalizer(() => Effect.sync(() => pg.resume()))
        yield* Effect.promise(async () => {
          const depth = async () => {
            const text = await (await fetch(`${runner.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
            return value(parse(text), queueDepthMetric.name, { type: queueDepthMetric.entityType })
          }
          const waitFor = async (what: string, holds: (n: number) => boolean) => {
            let last = Number.NaN
            for (let i = 0; i < 100; i++) {
              last = await depth()
              if (holds(last)) return last
              await new Promise((resolve) => setTimeout(resolve, 100))
            }
            assert.fail(`${what}: ${queueDepthMetric.name}{type="SymbolShard"} stayed ${last}`)
          }
          const symbol = defaultSymbols[2].symbol
          // The shard active first, so what waits below is the journal write, not the activation.
          const first = await rawRpc(runner.url, placeRequest("0", symbol, "q-0"))
          assert.strictEqual(first.lines[0]?.exit?._tag, "Success", JSON.stringify(first.lines))
          await waitFor("an idle shard", (n) => n === 0)
          pg.pause()
          let answered = 0
          const waiting = Array.from({ length: 8 }, (_, i) =>
            rawRpc(runner.url, placeRequest(String(i + 1), symbol, `q-${i + 1}`)).finally(() => {
              answered++
            })
          )
          await waitFor("orders waiting for PostgreSQL", (n) => n >= 8)
          // And they stay counted while their journal write cannot complete (a healthy database makes them durable in
          // milliseconds: the gauge would be back at 0).
          await new Promise((resolve) => setTimeout(resolve, 1500))
          assert.strictEqual(answered, 0, "no order answered before it is durable")
          assert.isAtLeast(await depth(), 8, "the backlog stays in the gauge")
          pg.resume()
          const answers = await Promise.all(waiting)
          for (const answer of answers) assert.strictEqual(answer.lines[0]?.exit?._tag, "Success", answer.text)
          await waitFor("every order durable", (n) => n === 0)
          assert.strictEqual(db.query(`SELECT count(*) FROM orders WHERE symbol = '${symbol}'`), "9")
        })
      }).pipe(Effect.scoped, Effect.runPromise),
    120_000
  )
})
