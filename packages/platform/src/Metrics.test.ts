import { assert, describe, it } from "@effect/vitest"
import { Context, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Registry } from "./Metrics.ts"

const isolated = () => new Registry(Context.make(Metric.MetricRegistry, new Map()))
const render = (registry: Registry) => PrometheusMetrics.formatUnsafe(registry.context)

describe("Metrics over Effect's metric registry", () => {
  it("renders counters, gauges and labelled histograms through Effect's Prometheus exporter", () => {
    const registry = isolated()
    const orders = registry.counter("t_orders_total", "Orders", ["symbol"])
    orders.labels({ symbol: 'A"B' }).inc()
    orders.labels({ symbol: 'A"B' }).inc(2)
    orders.labels({ symbol: "C" }).inc()
    const depth = registry.gauge("t_depth", "Depth")
    depth.set(7)
    depth.dec(2)
    depth.inc(0.5)
    const latency = registry.histogram("t_latency_seconds", "Latency", { buckets: [0.1, 1] })
    latency.observe(0.05)
    latency.observe(0.5)
    latency.observe(5)
    const text = render(registry)
    assert.include(text, "# HELP t_orders_total Orders\n# TYPE t_orders_total counter")
    assert.include(text, 't_orders_total{symbol="A\\"B"} 3')
    assert.include(text, 't_orders_total{symbol="C"} 1')
    assert.strictEqual(text.match(/# TYPE t_orders_total/g)?.length, 1, "one family, two series")
    assert.include(text, "t_depth 5.5")
    assert.include(text, 't_latency_seconds_bucket{le="0.1"} 1')
    assert.include(text, 't_latency_seconds_bucket{le="1"} 2')
    assert.include(text, 't_latency_seconds_bucket{le="+Inf"} 3')
    assert.include(text, "t_latency_seconds_sum 5.55")
    assert.include(text, "t_latency_seconds_count 3")
    assert.deepStrictEqual(latency.cumulative(), [1, 2, 3])
  })

  it("exports a declared series as 0 before its first update", () => {
    const registry = isolated()
    registry.counter("t_dropped_total", "Dropped")
    registry.counter("t_by_kind_total", "By kind", ["kind"]).labels({ kind: "x" })
    const text = render(registry)
    assert.include(text, "t_dropped_total 0")
    assert.include(text, 't_by_kind_total{kind="x"} 0')
  })

  it("keeps every registry's series apart", () => {
    const a = isolated()
    const b = isolated()
    a.counter("t_x_total", "x").inc(4)
    b.counter("t_x_total", "x").inc(1)
    assert.include(render(a), "t_x_total 4")
    assert.include(render(b), "t_x_total 1")
  })

  it("enforces naming and rejects conflicting re-registration, but returns the same metric for the same shape", () => {
    const registry = isolated()
    assert.throws(() => registry.counter("t_orders", "no suffix"))
    assert.throws(() => registry.gauge("t_things_total", "gauge with counter suffix"))
    assert.throws(() => registry.counter("bad name_total", "space"))
    assert.throws(() => registry.counter("t_le_total", "reserved label", ["le"]))
    assert.throws(() => registry.histogram("t_h_seconds", "unsorted", { buckets: [1, 0.5] }))
    const a = registry.counter("t_x_total", "x", ["a"])
    assert.strictEqual(registry.counter("t_x_total", "x", ["a"]), a)
    assert.throws(() => registry.counter("t_x_total", "x", ["b"]))
    assert.throws(() => registry.gauge("t_x_total", "x"))
    assert.throws(() => a.labels({ a: "1" }).inc(-1), /cannot decrease/)
    assert.throws(() => a.labels({ a: "1" }).set(3), /cannot be set/)
    assert.throws(() => a.inc(), /labels/)
    assert.throws(() => a.labels({}), /missing label a/)
    assert.strictEqual(a.labels({ a: "1" }), a.labels({ a: "1" }), "a labelled series is kept")
  })

  it("reads an unlabelled metric's current value, count and sum, and lists labelled series", () => {
    const registry = isolated()
    const dropped = registry.counter("t_dropped_total", "Dropped")
    const level = registry.gauge("t_level", "Level")
    const latency = registry.histogram("t_latency_seconds", "Latency")
    dropped.inc()
    dropped.inc(2)
    level.set(7)
    latency.observe(0.5)
    latency.observe(1.5)
    assert.strictEqual(dropped.value, 3)
    assert.strictEqual(level.value, 7)
    assert.strictEqual(latency.count, 2)
    assert.strictEqual(latency.sum, 2)
    const hits = registry.counter("t_hits_total", "Hits", ["zone"])
    hits.labels({ zone: "a" }).inc(2)
    hits.labels({ zone: "b" }).inc(3)
    assert.deepStrictEqual(
      hits.series().map(([labels, series]) => [labels.zone, series.value]),
      [
        ["a", 2],
        ["b", 3]
      ]
    )
  })
})
