import { assert, describe, it } from "@effect/vitest"
import { quantile, Registry } from "./prometheus.ts"

describe("prometheus registry", () => {
  it("renders counters, gauges and labelled histograms in the exposition format", () => {
    const registry = new Registry()
    const orders = registry.counter("t_orders_total", "Orders", ["symbol"])
    orders.labels({ symbol: 'A"B' }).inc()
    orders.labels({ symbol: 'A"B' }).inc(2)
    const depth = registry.gauge("t_depth", "Depth")
    depth.set(7)
    depth.dec(2)
    const latency = registry.histogram("t_latency_seconds", "Latency", { buckets: [0.1, 1] })
    latency.observe(0.05)
    latency.observe(0.5)
    latency.observe(5)
    const text = registry.render().join("\n")
    assert.include(text, "# TYPE t_orders_total counter")
    assert.include(text, 't_orders_total{symbol="A\\"B"} 3')
    assert.include(text, "t_depth 5")
    assert.include(text, 't_latency_seconds_bucket{le="0.1"} 1')
    assert.include(text, 't_latency_seconds_bucket{le="1"} 2')
    assert.include(text, 't_latency_seconds_bucket{le="+Inf"} 3')
    assert.include(text, "t_latency_seconds_sum 5.55")
    assert.include(text, "t_latency_seconds_count 3")
  })

  it("enforces naming and rejects conflicting re-registration, but returns the same metric for the same shape", () => {
    const registry = new Registry()
    assert.throws(() => registry.counter("t_orders", "no suffix"))
    assert.throws(() => registry.gauge("t_things_total", "gauge with counter suffix"))
    assert.throws(() => registry.counter("bad name_total", "space"))
    const a = registry.counter("t_x_total", "x", ["a"])
    assert.strictEqual(registry.counter("t_x_total", "x", ["a"]), a)
    assert.throws(() => registry.counter("t_x_total", "x", ["b"]))
    assert.throws(() => registry.gauge("t_x_total", "x"))
    assert.throws(() => a.labels({ a: "1" }).inc(-1))
    assert.throws(() => a.inc(), /labels/)
  })

  it("reads an unlabelled metric's current value, count and sum, not the ones it had when declared", () => {
    const registry = new Registry()
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
  })

  it("estimates quantiles like histogram_quantile", () => {
    const bounds = [1, 2, 4]
    assert.isNaN(quantile(0.5, bounds, [0, 0, 0, 0]))
    assert.strictEqual(quantile(0.5, bounds, [0, 10, 10, 10]), 1.5)
    assert.strictEqual(quantile(1, bounds, [10, 10, 10, 10]), 1)
    assert.strictEqual(quantile(0.99, bounds, [0, 0, 0, 10]), 4)
  })
})
