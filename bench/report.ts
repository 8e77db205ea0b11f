/**
 * Bench reports: the bench's JSON plus an SVG drawing of what it measured, side by side in `bench/results/`.
 *
 * The SVG has two charts: latency percentiles per offered load (log scale, one colour per percentile, one
 * dash style per series) and achieved throughput against offered load (the dotted diagonal is "kept up").
 * Hand-rolled SVG, no dependencies; a bench that measured one load level still gets readable points.
 *
 *   import { writeReport } from "./report.ts"
 *   writeReport("tps", resultJson, [{ name: "3 runners", points: [{ offered: 1000, throughput: 998,
 *     latencyMs: { p50: 1.2, p99: 4.8, p999: 9.1 } }, ...] }])
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"

export interface LoadPoint {
  /** Offered load (requests or orders per second). */
  readonly offered: number
  /** Achieved throughput at that load (per second). */
  readonly throughput: number
  /** Latency percentiles in milliseconds, keyed `p50`, `p90`, `p99`, `p999`, `max`, ... */
  readonly latencyMs: Readonly<Record<string, number>>
}

export interface Series {
  readonly name: string
  readonly points: ReadonlyArray<LoadPoint>
}

export interface ReportOptions {
  /** Folder for the files (default `bench/results`). */
  readonly dir?: string
  /** Chart title (default the bench name). */
  readonly title?: string
  /** Unit of load in axis labels (default `ops/s`). */
  readonly unit?: string
}

export const resultsDir = resolve(import.meta.dirname, "results")

const percentileColors: Record<string, string> = {
  p50: "#1f77b4",
  p90: "#2ca02c",
  p95: "#bcbd22",
  p99: "#ff7f0e",
  p999: "#d62728",
  "p99.9": "#d62728",
  max: "#7f7f7f"
}
const extraColors = ["#9467bd", "#8c564b", "#e377c2", "#17becf"]
const dashes = ["", "6 3", "2 3", "8 3 2 3"]

const escapeXml = (text: string) =>
  text.replace(/[&<>"]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&quot;"))

const fmt = (value: number): string => {
  const abs = Math.abs(value)
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`
  if (abs >= 1e3) return `${+(value / 1e3).toPrecision(3)}k`
  if (abs >= 1 || abs === 0) return `${+value.toPrecision(3)}`
  return `${+value.toPrecision(2)}`
}

/** About `count` round tick values covering [min, max]. */
export const linearTicks = (min: number, max: number, count = 5): Array<number> => {
  if (!(max > min)) return [min]
  const raw = (max - min) / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw
  const ticks: Array<number> = []
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12))
  return ticks
}

const logTicks = (min: number, max: number): Array<number> => {
  const ticks: Array<number> = []
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(+v.toPrecision(6))
    }
  }
  return ticks
}

interface Frame {
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
}

const line = (points: ReadonlyArray<readonly [number, number]>, color: string, dash: string) =>
  `<polyline fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ""} points="${points
    .map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`)
    .join(" ")}"/>` +
  points.map(([x, y]) => `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="2.5" fill="${color}"/>`).join("")

const axes = (
  frame: Frame,
  xTicks: ReadonlyArray<number>,
  yTicks: ReadonlyArray<number>,
  sx: (v: number) => number,
  sy: (v: number) => number,
  xLabel: string,
  yLabel: string,
  title: string
): Array<string> => {
  const out: Array<string> = []
  const bottom = frame.y + frame.height
  out.push(`<text x="${frame.x}" y="${frame.y - 12}" font-size="14" font-weight="600">${escapeXml(title)}</text>`)
  out.push(
    `<rect x="${frame.x}" y="${frame.y}" width="${frame.width}" height="${frame.height}" fill="none" stroke="#ccc"/>`
  )
  for (const t of yTicks) {
    const y = sy(t).toFixed(1)
    out.push(`<line x1="${frame.x}" x2="${frame.x + frame.width}" y1="${y}" y2="${y}" stroke="#eee"/>`)
    out.push(
      `<text x="${frame.x - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`
    )
  }
  for (const t of xTicks) {
    const x = sx(t).toFixed(1)
    out.push(`<line x1="${x}" x2="${x}" y1="${frame.y}" y2="${bottom}" stroke="#eee"/>`)
    out.push(`<text x="${x}" y="${bottom + 16}" font-size="11" text-anchor="middle">${fmt(t)}</text>`)
  }
  out.push(
    `<text x="${frame.x + frame.width / 2}" y="${bottom + 36}" font-size="12" text-anchor="middle">${escapeXml(xLabel)}</text>`
  )
  const cy = frame.y + frame.height / 2
  out.push(
    `<text x="${frame.x - 48}" y="${cy}" font-size="12" text-anchor="middle" transform="rotate(-90 ${frame.x - 48} ${cy})">${escapeXml(yLabel)}</text>`
  )
  return out
}

/** The SVG document for `series` (exported for tests and for benches that embed it elsewhere). */
export const renderSvg = (title: string, series: ReadonlyArray<Series>, unit = "ops/s"): string => {
  const width = 1100
  const height = 470
  const left: Frame = { x: 80, y: 60, width: 420, height: 300 }
  const right: Frame = { x: 640, y: 60, width: 420, height: 300 }
  const points = series.flatMap((s) => s.points)
  const offered = points.map((p) => p.offered).filter(Number.isFinite)
  const xMin = Math.min(0, ...offered)
  const xMaxRaw = Math.max(1, ...offered, ...points.map((p) => p.throughput).filter(Number.isFinite))
  const xMax = Math.max(xMaxRaw, linearTicks(xMin, xMaxRaw).at(-1)!)
  const sxFor = (frame: Frame) => (v: number) => frame.x + ((v - xMin) / (xMax - xMin)) * frame.width

  const percentiles: Array<string> = []
  for (const p of points)
    for (const key of Object.keys(p.latencyMs)) if (!percentiles.includes(key)) percentiles.push(key)
  const latencies = points.flatMap((p) => Object.values(p.latencyMs)).filter((v) => Number.isFinite(v) && v > 0)
  const lMin = latencies.length > 0 ? 10 ** Math.floor(Math.log10(Math.min(...latencies))) : 0.1
  const lMax = latencies.length > 0 ? 10 ** Math.ceil(Math.log10(Math.max(...latencies) * 1.0001)) : 10
  const syLat = (v: number) =>
    left.y + left.height - ((Math.log10(v) - Math.log10(lMin)) / (Math.log10(lMax) - Math.log10(lMin))) * left.height
  const syTp = (v: number) => right.y + right.height - ((v - xMin) / (xMax - xMin)) * right.height

  const out: Array<string> = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`
  )
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`)
  out.push(
    `<text x="${width / 2}" y="24" font-size="16" font-weight="700" text-anchor="middle">${escapeXml(title)}</text>`
  )

  const sxL = sxFor(left)
  out.push(
    ...axes(
      left,
      linearTicks(xMin, xMax),
      logTicks(lMin, lMax),
      sxL,
      syLat,
      `offered load (${unit})`,
      "latency (ms, log)",
      "Latency percentiles per offered load"
    )
  )
  series.forEach((s, si) => {
    const sorted = [...s.points].sort((a, b) => a.offered - b.offered)
    percentiles.forEach((key, ki) => {
      const pts = sorted
        .filter((p) => Number.isFinite(p.latencyMs[key]) && p.latencyMs[key] > 0)
        .map((p) => [sxL(p.offered), syLat(p.latencyMs[key])] as const)
      if (pts.length > 0)
        out.push(line(pts, percentileColors[key] ?? extraColors[ki % extraColors.length], dashes[si % dashes.length]))
    })
  })

  const sxR = sxFor(right)
  out.push(
    ...axes(
      right,
      linearTicks(xMin, xMax),
      linearTicks(xMin, xMax),
      sxR,
      syTp,
      `offered load (${unit})`,
      `throughput (${unit})`,
      "Throughput vs offered load"
    )
  )
  out.push(
    `<line x1="${sxR(xMin)}" y1="${syTp(xMin)}" x2="${sxR(xMax)}" y2="${syTp(xMax)}" stroke="#999" stroke-dasharray="2 4"/>`
  )
  series.forEach((s, si) => {
    const pts = [...s.points]
      .filter((p) => Number.isFinite(p.throughput))
      .sort((a, b) => a.offered - b.offered)
      .map((p) => [sxR(p.offered), syTp(p.throughput)] as const)
    if (pts.length > 0) out.push(line(pts, extraColors[si % extraColors.length], dashes[si % dashes.length]))
  })

  // legend: percentile colours, then series dash styles
  let lx = 80
  const ly = height - 30
  for (const [ki, key] of percentiles.entries()) {
    const color = percentileColors[key] ?? extraColors[ki % extraColors.length]
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`)
    out.push(`<text x="${lx + 28}" y="${ly}" font-size="12" dominant-baseline="middle">${escapeXml(key)}</text>`)
    lx += 40 + key.length * 8
  }
  lx += 20
  for (const [si, s] of series.entries()) {
    out.push(
      `<line x1="${lx}" x2="${lx + 30}" y1="${ly}" y2="${ly}" stroke="#333" stroke-width="2"${dashes[si % dashes.length] ? ` stroke-dasharray="${dashes[si % dashes.length]}"` : ""}/>`
    )
    out.push(`<text x="${lx + 36}" y="${ly}" font-size="12" dominant-baseline="middle">${escapeXml(s.name)}</text>`)
    lx += 50 + s.name.length * 7
  }
  out.push("</svg>")
  return `${out.join("\n")}\n`
}

/**
 * Writes `<dir>/<name>.json` (the bench's result, pretty-printed) and `<dir>/<name>.svg` (its plots); returns
 * both paths. Call it once at the end of a bench, before printing the final JSON line.
 */
export const writeReport = (
  name: string,
  json: unknown,
  series: ReadonlyArray<Series>,
  options: ReportOptions = {}
): { readonly json: string; readonly svg: string } => {
  const dir = options.dir ?? resultsDir
  mkdirSync(dir, { recursive: true })
  const jsonPath = join(dir, `${name}.json`)
  const svgPath = join(dir, `${name}.svg`)
  writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`)
  writeFileSync(svgPath, renderSvg(options.title ?? name, series, options.unit))
  return { json: jsonPath, svg: svgPath }
}
