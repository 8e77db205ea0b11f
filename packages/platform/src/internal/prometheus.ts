/**
 * A small Prometheus registry for hot paths: counters, gauges and histograms updated synchronously with no
 * allocation per update (a labelled child is looked up once and kept by the caller), rendered in the text
 * exposition format at scrape time. No Effect imports: actor cores may use it directly.
 */

export type Labels = Readonly<Record<string, string>>

interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly labelNames: ReadonlyArray<string>
  render(out: Array<string>): void
}

/** Latency buckets in seconds: 100 µs to 10 s. */
export const latencyBuckets: ReadonlyArray<number> = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/** Size buckets (items per batch, book depth): powers of two up to 65536. */
export const sizeBuckets: ReadonlyArray<number> = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536]

const namePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelPattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const labelText = (names: ReadonlyArray<string>, values: ReadonlyArray<string>, extra?: string): string => {
  if (names.length === 0 && extra === undefined) return ""
  const parts: Array<string> = []
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]}="${escapeLabel(values[i])}"`)
  if (extra !== undefined) parts.push(extra)
  return `{${parts.join(",")}}`
}

const formatNumber = (value: number) =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

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

export interface Metric<S> {
  readonly name: string
  readonly help: string
  readonly labelNames: ReadonlyArray<string>
  /** The series for these label values (created on first use; keep the result on hot paths). */
  labels(values: Labels): S
  /** All series with their label values. */
  series(): ReadonlyArray<readonly [Labels, S]>
}

export type Counter = Metric<Scalar> & Scalar
export type Gauge = Metric<Scalar> & Scalar
export type Histogram = Metric<Series> & Series

class ScalarImpl implements Scalar {
  value = 0
  readonly monotonic: boolean
  readonly name: string
  constructor(monotonic: boolean, name: string) {
    this.monotonic = monotonic
    this.name = name
  }
  inc(value = 1) {
    if (this.monotonic && value < 0) throw new RangeError(`${this.name}: a counter cannot decrease`)
    this.value += value
  }
  set(value: number) {
    if (this.monotonic) throw new TypeError(`${this.name}: a counter cannot be set`)
    this.value = value
  }
  dec(value = 1) {
    if (this.monotonic) throw new TypeError(`${this.name}: a counter cannot decrease`)
    this.value -= value
  }
}

class SeriesImpl implements Series {
  count = 0
  sum = 0
  readonly bounds: ReadonlyArray<number>
  readonly counts: Float64Array
  constructor(bounds: ReadonlyArray<number>) {
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
  }
  observe(value: number) {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    this.counts[i]++
    this.count++
    this.sum += value
  }
  cumulative = (): ReadonlyArray<number> => {
    const out: Array<number> = []
    let running = 0
    for (let i = 0; i < this.counts.length; i++) {
      running += this.counts[i]
      out.push(running)
    }
    return out
  }
}

/**
 * The estimated `q` quantile (0..1) from cumulative bucket counts, interpolating linearly inside the bucket
 * the way Prometheus' `histogram_quantile` does. NaN when there are no observations.
 */
export const quantile = (q: number, bounds: ReadonlyArray<number>, cumulative: ReadonlyArray<number>): number => {
  const total = cumulative[cumulative.length - 1] ?? 0
  if (total === 0) return Number.NaN
  const rank = q * total
  for (let i = 0; i < cumulative.length; i++) {
    if (cumulative[i] >= rank) {
      if (i === bounds.length) return bounds[bounds.length - 1] ?? Number.NaN
      const lower = i === 0 ? 0 : bounds[i - 1]
      const below = i === 0 ? 0 : cumulative[i - 1]
      const inBucket = cumulative[i] - below
      return inBucket === 0 ? bounds[i] : lower + ((bounds[i] - lower) * (rank - below)) / inBucket
    }
  }
  return bounds[bounds.length - 1] ?? Number.NaN
}

const makeMetric = <S>(
  name: string,
  help: string,
  labelNames: ReadonlyArray<string>,
  create: () => S
): Metric<S> & { readonly root: S | undefined } => {
  const children = new Map<string, readonly [Labels, S]>()
  const root = labelNames.length === 0 ? create() : undefined
  if (root !== undefined) children.set("", [{}, root])
  return {
    name,
    help,
    labelNames,
    root,
    labels(values: Labels): S {
      let key = ""
      for (let i = 0; i < labelNames.length; i++) {
        const value = values[labelNames[i]]
        if (value === undefined) throw new TypeError(`${name}: missing label ${labelNames[i]}`)
        key += i === 0 ? value : `\u0000${value}`
      }
      const found = children.get(key)
      if (found !== undefined) return found[1]
      const series = create()
      const own: Record<string, string> = {}
      for (const label of labelNames) own[label] = values[label]
      children.set(key, [own, series])
      return series
    },
    series: () => Array.from(children.values())
  }
}

/** A set of metric families rendered together. */
export class Registry {
  private readonly families = new Map<string, Family & { readonly metric: unknown }>()

  private register<M>(
    name: string,
    type: Family["type"],
    help: string,
    labelNames: ReadonlyArray<string>,
    build: () => M,
    render: (metric: M, out: Array<string>) => void
  ): M {
    if (!namePattern.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`)
    for (const label of labelNames) {
      if (!labelPattern.test(label) || label === "le") throw new TypeError(`${name}: invalid label name ${label}`)
    }
    const existing = this.families.get(name)
    if (existing !== undefined) {
      if (existing.type !== type || existing.labelNames.join(",") !== labelNames.join(",")) {
        throw new TypeError(`metric ${name} is already registered as a ${existing.type} (${existing.labelNames})`)
      }
      return existing.metric as M
    }
    const metric = build()
    this.families.set(name, { name, type, help, labelNames, metric, render: (out) => render(metric, out) })
    return metric
  }

  counter(name: string, help: string, labelNames: ReadonlyArray<string> = []): Counter {
    if (!name.endsWith("_total")) throw new TypeError(`counter ${name} must end in _total`)
    return this.register(
      name,
      "counter",
      help,
      labelNames,
      () => scalarMetric(name, help, labelNames, true),
      renderScalar
    )
  }

  gauge(name: string, help: string, labelNames: ReadonlyArray<string> = []): Gauge {
    if (name.endsWith("_total")) throw new TypeError(`gauge ${name} must not end in _total`)
    return this.register(
      name,
      "gauge",
      help,
      labelNames,
      () => scalarMetric(name, help, labelNames, false),
      renderScalar
    )
  }

  histogram(
    name: string,
    help: string,
    options: { readonly labelNames?: ReadonlyArray<string>; readonly buckets?: ReadonlyArray<number> } = {}
  ): Histogram {
    if (name.endsWith("_total")) throw new TypeError(`histogram ${name} must not end in _total`)
    const buckets = options.buckets ?? latencyBuckets
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i] > buckets[i - 1])) throw new TypeError(`${name}: buckets must increase`)
    }
    const labelNames = options.labelNames ?? []
    return this.register(
      name,
      "histogram",
      help,
      labelNames,
      () => histogramMetric(name, help, labelNames, buckets),
      renderHistogram
    )
  }

  /** Metric family names registered so far. */
  names(): ReadonlyArray<string> {
    return Array.from(this.families.keys())
  }

  /** The exposition text of every family (HELP, TYPE, samples). */
  render(out: Array<string> = []): Array<string> {
    for (const family of this.families.values()) {
      if (family.help) out.push(`# HELP ${family.name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`)
      out.push(`# TYPE ${family.name} ${family.type}`)
      family.render(out)
    }
    return out
  }
}

const scalarMetric = (name: string, help: string, labelNames: ReadonlyArray<string>, monotonic: boolean) => {
  const metric = makeMetric(name, help, labelNames, () => new ScalarImpl(monotonic, name))
  const root = metric.root
  const noRoot = () => {
    throw new TypeError(`${name} has labels (${labelNames}); use .labels({...})`)
  }
  // defineProperties, not Object.assign: assign would copy a getter's value once instead of the getter.
  return Object.defineProperties(metric, {
    inc: { value: (value?: number) => (root ? root.inc(value) : noRoot()) },
    set: { value: (value: number) => (root ? root.set(value) : noRoot()) },
    dec: { value: (value?: number) => (root ? root.dec(value) : noRoot()) },
    value: { get: () => (root ? root.value : Number.NaN) }
  }) as typeof metric & Scalar
}

const histogramMetric = (
  name: string,
  help: string,
  labelNames: ReadonlyArray<string>,
  buckets: ReadonlyArray<number>
) => {
  const metric = makeMetric(name, help, labelNames, () => new SeriesImpl(buckets))
  const root = metric.root
  return Object.defineProperties(metric, {
    observe: {
      value: (value: number) => {
        if (root === undefined) throw new TypeError(`${name} has labels (${labelNames}); use .labels({...})`)
        root.observe(value)
      }
    },
    count: { get: () => (root ? root.count : 0) },
    sum: { get: () => (root ? root.sum : 0) },
    cumulative: { value: () => (root ? root.cumulative() : []) },
    bounds: { value: buckets }
  }) as typeof metric & Series
}

const renderScalar = (metric: Metric<Scalar>, out: Array<string>) => {
  for (const [labels, series] of metric.series()) {
    const values = metric.labelNames.map((label) => labels[label])
    out.push(`${metric.name}${labelText(metric.labelNames, values)} ${formatNumber(series.value)}`)
  }
}

const renderHistogram = (metric: Metric<Series>, out: Array<string>) => {
  for (const [labels, series] of metric.series()) {
    const values = metric.labelNames.map((label) => labels[label])
    const cumulative = series.cumulative()
    for (let i = 0; i < series.bounds.length; i++) {
      out.push(
        `${metric.name}_bucket${labelText(metric.labelNames, values, `le="${series.bounds[i]}"`)} ${cumulative[i]}`
      )
    }
    out.push(`${metric.name}_bucket${labelText(metric.labelNames, values, 'le="+Inf"')} ${series.count}`)
    out.push(`${metric.name}_sum${labelText(metric.labelNames, values)} ${formatNumber(series.sum)}`)
    out.push(`${metric.name}_count${labelText(metric.labelNames, values)} ${series.count}`)
  }
}
