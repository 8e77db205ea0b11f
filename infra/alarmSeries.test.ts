// The alarms and the queue-depth scaling policy read series a real runner exports: a runner process on the real
// PostgreSQL and Redis takes orders, then its `/metrics` is scraped as the collector sidecar scrapes it. Every metric
// an alarm names is there, and the scaling metric is there under the name and with the `type` label the policy
// selects on (the collector adds only `stage`).
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { seedModules } from "../actors/index.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import { type Cluster, rawRpc, rpcRequest, startCluster } from "../test/harness.ts"
import { families, parse } from "../test/promText.ts"
import { alarms, queueDepthMetric } from "./observability.ts"
import { dev } from "./stage.ts"

let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(1, { label: "alarm_series" })
}, 120_000)
afterAll(() => cluster?.stop())

/** The runtime's metric names in a PromQL expression (`up` and other scrape-made series are Prometheus's own). */
const runtimeMetricsIn = (expr: string) => [
  ...new Set((expr.match(/\b(?:tessera|effect_cluster)_[a-z_]+/g) ?? []).map((m) => m.replace(/_bucket$/, "")))
]

describe("the series the alarms and the scaling policy read (a runner process, real Postgres + Redis)", () => {
  it("are exported at /metrics once the runner has taken orders", async () => {
    const { url } = cluster.runners[0]
    for (const [i, { symbol }] of defaultSymbols.slice(0, 2).entries()) {
      const { lines } = await rawRpc(
        url,
        rpcRequest(String(i), "SymbolShard.Place", {
          entityId: symbol,
          payload: { account: "a", clientOrderId: `s-${i}`, side: "buy", price: "90", qty: "1" }
        })
      )
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
})
