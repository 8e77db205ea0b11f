/**
 * Tessera's metrics: Effect metrics (`effect/Metric`) under Prometheus naming rules, with synchronous updates
 * for hot paths. They live in Effect's metric registry beside the cluster's own (`effect_cluster_*`), so one
 * exporter (`PrometheusMetrics.format`) renders every series at `GET /metrics`.
 *
 * Modules declare their metrics once at module level:
 *
 *   const ordersPlaced = Metrics.counter("tessera_orders_placed_total", "Orders accepted", ["symbol"])
 *   const placeLatency = Metrics.histogram("tessera_order_place_seconds", "Order placement latency")
 *   ordersPlaced.labels({ symbol }).inc()          // keep the labelled series when the label is fixed
 *   placeLatency.observe(seconds)
 *
 * A labelled series is one Effect metric carrying its labels as attributes and updated against a fixed
 * context, so an update is a registry lookup by a cached key and allocates nothing (`Metric.withAttributes`
 * would rebuild the context and its key on every update).
 */
import { Context, Metric } from "effect"

export type Labels = Readonly<Record<string, string>>

/** Latency buckets in seconds: 100 µs to 10 s. */
export const latencyBuckets: ReadonlyArray<number> = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/** Size buckets (items per batch, book depth): powers of two up to 65536. */
export const sizeBuckets: ReadonlyArray<number> = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536]

/** One series of a counter or gauge. */
export interface Scalar {
  /** Adds `value` (default 1). Counters reject negative values. */
  inc(value?: number): void
  /** Sets the value (gauges only). */
  set(value: number): void
  /** Subtracts `value` (default 1; gauges only). */
  dec(value?: number): void
  readonly value: number
}

/** One series of a histogram. */
export interface Series {
  /** Records one observation (seconds for `_seconds` histograms). */
  observe(value: number): void
  readonly count: number
  readonly sum: number
  /** Cumulative counts per bucket upper bound (the last entry is +Inf). */
  readonly cumulative: () => ReadonlyArray<number>
  readonly bounds: ReadonlyArray<number>
}

export interface Family<S> {
  readonly name: string
  readonly help: string
  readonly labelNames: ReadonlyArray<string>
  /** The series for these label values (created on first use; keep the result on hot paths). */
  labels(values: Labels): S
  /** All series with their label values. */
  series(): ReadonlyArray<readonly [Labels, S]>
}

export type Counter = Family<Scalar> & Scalar
export type Gauge = Family<Scalar> & Scalar
export type Histogram = Family<Series> & Series

const namePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelPattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/

type Kind = "counter" | "gauge" | "histogram"

class ScalarSeries implements Scalar {
  readonly #metric: Metric.Metric<number, { readonly count: number } | { readonly value: number }>
  readonly #context: Context.Context<never>
  readonly #counter: boolean
  readonly #name: string
  constructor(name: string, counter: boolean, help: string, attributes: Labels, context: Context.Context<never>) {
    this.#name = name
    this.#counter = counter
    this.#context = context
    this.#metric = counter
      ? Metric.counter(name, { description: help, attributes, incremental: true })
      : Metric.gauge(name, { description: help, attributes })
    // Registers the series, so it is exported (as 0) before its first update.
    this.#metric.valueUnsafe(context)
  }
  inc(value = 1) {
    if (this.#counter) {
      if (value < 0) throw new RangeError(`${this.#name}: a counter cannot decrease`)
      this.#metric.updateUnsafe(value, this.#context)
    } else this.#metric.modifyUnsafe(value, this.#context)
  }
  set(value: number) {
    if (this.#counter) throw new TypeError(`${this.#name}: a counter cannot be set`)
    this.#metric.updateUnsafe(value, this.#context)
  }
  dec(value = 1) {
    if (this.#counter) throw new TypeError(`${this.#name}: a counter cannot decrease`)
    this.#metric.modifyUnsafe(-value, this.#context)
  }
  get value(): number {
    const state = this.#metric.valueUnsafe(this.#context)
    return "count" in state ? state.count : state.value
  }
}

class HistogramSeries implements Series {
  readonly #metric: Metric.Metric<number, Metric.HistogramState>
  readonly #context: Context.Context<never>
  readonly bounds: ReadonlyArray<number>
  constructor(
    name: string,
    help: string,
    attributes: Labels,
    bounds: ReadonlyArray<number>,
    context: Context.Context<never>
  ) {
    this.bounds = bounds
    this.#context = context
    this.#metric = Metric.histogram(name, { description: help, attributes, boundaries: bounds })
    this.#metric.valueUnsafe(context)
  }
  observe(value: number) {
    this.#metric.updateUnsafe(value, this.#context)
  }
  get count(): number {
    return this.#metric.valueUnsafe(this.#context).count
  }
  get sum(): number {
    return this.#metric.valueUnsafe(this.#context).sum
  }
  cumulative = (): ReadonlyArray<number> => {
    const state = this.#metric.valueUnsafe(this.#context)
    const out: Array<number> = []
    for (const [bound, count] of state.buckets) if (bound !== Number.POSITIVE_INFINITY) out.push(count)
    out.push(state.count)
    return out
  }
}

class FamilyImpl<S> implements Family<S> {
  readonly #children = new Map<string, readonly [Labels, S]>()
  readonly #create: (labels: Labels) => S
  readonly root: S | undefined
  readonly name: string
  readonly help: string
  readonly kind: Kind
  readonly labelNames: ReadonlyArray<string>
  constructor(
    name: string,
    help: string,
    kind: Kind,
    labelNames: ReadonlyArray<string>,
    create: (labels: Labels) => S
  ) {
    this.name = name
    this.help = help
    this.kind = kind
    this.labelNames = labelNames
    this.#create = create
    this.root = labelNames.length === 0 ? this.labels({}) : undefined
  }
  labels(values: Labels): S {
    const names = this.labelNames
    let key = ""
    for (let i = 0; i < names.length; i++) {
      const value = values[names[i]]
      if (value === undefined) throw new TypeError(`${this.name}: missing label ${names[i]}`)
      key += i === 0 ? value : `\u0000${value}`
    }
    const found = this.#children.get(key)
    if (found !== undefined) return found[1]
    const own: Record<string, string> = {}
    for (const label of names) own[label] = values[label]
    const series = this.#create(own)
    this.#children.set(key, [own, series])
    return series
  }
  series(): ReadonlyArray<readonly [Labels, S]> {
    return Array.from(this.#children.values())
  }
  unlabelled(): S {
    if (this.root === undefined) throw new TypeError(`${this.name} has labels (${this.labelNames}); use .labels({...})`)
    return this.root
  }
}

class ScalarFamily extends FamilyImpl<Scalar> implements Scalar {
  inc(value?: number) {
    this.unlabelled().inc(value)
  }
  set(value: number) {
    this.unlabelled().set(value)
  }
  dec(value?: number) {
    this.unlabelled().dec(value)
  }
  get value(): number {
    return this.root === undefined ? Number.NaN : this.root.value
  }
}

class HistogramFamily extends FamilyImpl<Series> implements Series {
  readonly bounds: ReadonlyArray<number>
  constructor(
    name: string,
    help: string,
    labelNames: ReadonlyArray<string>,
    bounds: ReadonlyArray<number>,
    context: Context.Context<never>
  ) {
    super(name, help, "histogram", labelNames, (labels) => new HistogramSeries(name, help, labels, bounds, context))
    this.bounds = bounds
  }
  observe(value: number) {
    this.unlabelled().observe(value)
  }
  get count(): number {
    return this.root === undefined ? 0 : this.root.count
  }
  get sum(): number {
    return this.root === undefined ? 0 : this.root.sum
  }
  cumulative = (): ReadonlyArray<number> => (this.root === undefined ? [] : this.root.cumulative())
}

/**
 * Metric families declared against one Effect metric registry, which keeps their state. Checks names once:
 * counters end in `_total`, nothing else does, and a name keeps its kind and label names.
 */
export class Registry {
  readonly #families = new Map<string, FamilyImpl<unknown>>()
  /** The context updates run against: it carries the registry (or resolves Effect's default one). */
  readonly context: Context.Context<never>
  constructor(context: Context.Context<never> = Context.empty()) {
    this.context = context
  }

  #register<F extends FamilyImpl<unknown>>(
    name: string,
    kind: Kind,
    labelNames: ReadonlyArray<string>,
    build: () => F
  ) {
    if (!namePattern.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`)
    if ((kind === "counter") !== name.endsWith("_total")) {
      throw new TypeError(`${kind} ${name}: only counters end in _total, and every counter does`)
    }
    for (const label of labelNames) {
      if (!labelPattern.test(label) || label === "le") throw new TypeError(`${name}: invalid label name ${label}`)
    }
    const existing = this.#families.get(name)
    if (existing !== undefined) {
      if (existing.kind !== kind || existing.labelNames.join(",") !== labelNames.join(",")) {
        throw new TypeError(`metric ${name} is already registered as a ${existing.kind} (${existing.labelNames})`)
      }
      return existing as F
    }
    const family = build()
    this.#families.set(name, family)
    return family
  }

  counter(name: string, help: string, labelNames: ReadonlyArray<string> = []): Counter {
    const context = this.context
    return this.#register(
      name,
      "counter",
      labelNames,
      () =>
        new ScalarFamily(
          name,
          help,
          "counter",
          labelNames,
          (labels) => new ScalarSeries(name, true, help, labels, context)
        )
    )
  }

  gauge(name: string, help: string, labelNames: ReadonlyArray<string> = []): Gauge {
    const context = this.context
    return this.#register(
      name,
      "gauge",
      labelNames,
      () =>
        new ScalarFamily(
          name,
          help,
          "gauge",
          labelNames,
          (labels) => new ScalarSeries(name, false, help, labels, context)
        )
    )
  }

  histogram(
    name: string,
    help: string,
    options: { readonly labelNames?: ReadonlyArray<string>; readonly buckets?: ReadonlyArray<number> } = {}
  ): Histogram {
    const buckets = options.buckets ?? latencyBuckets
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i] > buckets[i - 1])) throw new TypeError(`${name}: buckets must increase`)
    }
    const labelNames = options.labelNames ?? []
    return this.#register(
      name,
      "histogram",
      labelNames,
      () => new HistogramFamily(name, help, labelNames, buckets, this.context)
    )
  }

  /** Metric family names declared so far. */
  names(): ReadonlyArray<string> {
    return Array.from(this.#families.keys())
  }
}

/** The process's families, in Effect's default metric registry. */
export const registry = new Registry()

const checkName = (name: string) => {
  if (!name.startsWith("tessera_")) throw new TypeError(`Tessera metric names start with tessera_: ${name}`)
}

/** A counter (`tessera_<what>_total`): things that happened. */
export const counter = (name: string, help: string, labelNames: ReadonlyArray<string> = []): Counter => {
  checkName(name)
  return registry.counter(name, help, labelNames)
}

/** A gauge (`tessera_<what>`, base units): a level that goes up and down (depth, lag, count held). */
export const gauge = (name: string, help: string, labelNames: ReadonlyArray<string> = []): Gauge => {
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
): Histogram => {
  checkName(name)
  return registry.histogram(name, help, options)
}

/** Seconds since `startMs` (a `performance.now()` reading): what `_seconds` histograms observe. */
export const secondsSince = (startMs: number): number => (performance.now() - startMs) / 1000

/** The names of the metric families among a module's exports (`Metrics.familyNames(ShardMetrics)`), sorted. */
export const familyNames = (exports: Readonly<Record<string, unknown>>): ReadonlyArray<string> => {
  const names = new Set<string>()
  for (const value of Object.values(exports)) if (value instanceof FamilyImpl) names.add(value.name)
  return [...names].sort()
}
