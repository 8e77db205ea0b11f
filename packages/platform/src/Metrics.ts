/**
 * Tessera's metrics registry: one per process, rendered at `GET /metrics` by the host with Effect's own cluster
 * metrics and process figures. Updates on hot paths are plain synchronous calls on a kept series.
 *
 * Modules declare their metrics once at module level:
 *
 *   const ordersPlaced = Metrics.counter("tessera_orders_placed_total", "Orders accepted", ["symbol"])
 *   const placeLatency = Metrics.histogram("tessera_order_place_seconds", "Order placement latency")
 *   ordersPlaced.labels({ symbol }).inc()          // keep the labelled series when the label is fixed
 *   placeLatency.observe(seconds)
 */
import * as Prometheus from "./internal/prometheus.ts"

export type { Counter, Gauge, Histogram, Labels, Scalar, Series } from "./internal/prometheus.ts"
export { latencyBuckets, quantile, sizeBuckets } from "./internal/prometheus.ts"

/** The process-wide registry every Tessera metric lives in. */
export const registry = new Prometheus.Registry()

const checkName = (name: string) => {
  if (!name.startsWith("tessera_")) throw new TypeError(`Tessera metric names start with tessera_: ${name}`)
}

/** A counter (`tessera_<what>_total`): things that happened. */
export const counter = (name: string, help: string, labelNames: ReadonlyArray<string> = []): Prometheus.Counter => {
  checkName(name)
  return registry.counter(name, help, labelNames)
}

/** A gauge (`tessera_<what>`, base units): a level that goes up and down (depth, lag, count held). */
export const gauge = (name: string, help: string, labelNames: ReadonlyArray<string> = []): Prometheus.Gauge => {
  checkName(name)
  return registry.gauge(name, help, labelNames)
}

/**
 * A histogram. Durations are observed in seconds and named `tessera_<what>_seconds` (default buckets
 * 100 µs - 10 s); sizes use `buckets: sizeBuckets` and a unit suffix such as `_items` or `_bytes`.
 */
export const histogram = (
  name: string,
  help: string,
  options: { readonly labelNames?: ReadonlyArray<string>; readonly buckets?: ReadonlyArray<number> } = {}
): Prometheus.Histogram => {
  checkName(name)
  return registry.histogram(name, help, options)
}

/** Seconds since `startMs` (a `performance.now()` reading): what `_seconds` histograms observe. */
export const secondsSince = (startMs: number): number => (performance.now() - startMs) / 1000

/** The names of the metric families among a module's exports (`Metrics.familyNames(ShardMetrics)`), sorted. */
export const familyNames = (exports: Readonly<Record<string, unknown>>): ReadonlyArray<string> => {
  const registered = new Set(registry.names())
  const names = new Set<string>()
  for (const value of Object.values(exports)) {
    if (typeof value !== "object" || value === null || !("labels" in value) || !("name" in value)) continue
    const name = (value as { readonly name: unknown }).name
    if (typeof name === "string" && registered.has(name)) names.add(name)
  }
  return [...names].sort()
}
