import { assert, describe, it } from "@effect/vitest"
import { lastJsonObject, seriesOf } from "./plots.ts"

describe("bench plots", () => {
  it("finds the last JSON object among printed lines", () => {
    const printed = 'table\n{"bench":"x","a":1}\nnot json {\n{"bench":"tps","max_tps":5}\n'
    assert.deepStrictEqual(lastJsonObject(printed), { bench: "tps", max_tps: 5 })
    assert.isUndefined(lastJsonObject("no json here\n[1,2]\n"))
  })

  it("turns tps steps into a load/latency series", () => {
    const series = seriesOf("tps", {
      runners: 2,
      symbols: 8,
      steps: [
        { offered_per_s: 1000, acked_per_s: 999, p50_ms: 1, p99_ms: 5, p999_ms: 9 },
        { offered_per_s: 5000, acked_per_s: 4990, p50_ms: 2, p99_ms: 8, p999_ms: 12 }
      ]
    })
    assert.strictEqual(series.length, 1)
    assert.deepStrictEqual(series[0].points[1], {
      offered: 5000,
      throughput: 4990,
      latencyMs: { p50: 2, p99: 8, p999: 12 }
    })
  })

  it("draws the engine in milliseconds, ours and the peer's", () => {
    const series = seriesOf("engine", {
      scenarios: [
        { scenario: "exchange-core", ops_per_s: 4e6, p50_us: 200, p99_us: 1000, p999_us: 3000, peer_ops_per_s: 2e5 }
      ]
    })
    assert.deepStrictEqual(
      series.map((s) => s.name),
      ["exchange-core (tessera)", "exchange-core (nodejs-order-book)"]
    )
    assert.strictEqual(series[0].points[0].latencyMs.p99, 1)
  })
})
