import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { linearTicks, renderSvg, type Series, writeReport } from "./report.ts"

const sweep: ReadonlyArray<Series> = [
  {
    name: "1 runner",
    points: [1000, 2000, 4000, 8000].map((offered) => ({
      offered,
      throughput: Math.min(offered, 5000),
      latencyMs: { p50: offered / 2000, p99: offered / 500, p999: offered / 100 }
    }))
  },
  {
    name: "3 runners",
    points: [1000, 2000, 4000, 8000].map((offered) => ({
      offered,
      throughput: offered,
      latencyMs: { p50: 0.4, p99: 2, p999: 5 }
    }))
  }
]

const coordinates = (svg: string) =>
  [...svg.matchAll(/points="([^"]*)"/g)].flatMap((m) => m[1].split(" ").flatMap((pair) => pair.split(",").map(Number)))

describe("bench report", () => {
  it("writes the JSON and an SVG with one latency line per percentile per series and a throughput line per series", () => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-report-"))
    try {
      const result = { bench: "tps", runs: 4 }
      const paths = writeReport("tps", result, sweep, { dir, title: "TPS sweep" })
      assert.deepStrictEqual(JSON.parse(readFileSync(paths.json, "utf8")), result)
      const svg = readFileSync(paths.svg, "utf8")
      assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
      assert.match(svg, /<\/svg>\n$/)
      assert.include(svg, "TPS sweep")
      // 3 percentiles x 2 series latency lines + 2 throughput lines
      assert.strictEqual((svg.match(/<polyline /g) ?? []).length, 8)
      for (const label of ["p50", "p99", "p999", "1 runner", "3 runners", "Throughput vs offered load"]) {
        assert.include(svg, label)
      }
      const coords = coordinates(svg)
      assert.isTrue(
        coords.length > 0 && coords.every((v) => Number.isFinite(v) && v >= 0 && v <= 1100),
        "in the canvas"
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("draws higher latency higher up the chart (smaller y) and escapes names", () => {
    const svg = renderSvg("a <b>", [
      { name: "x&y", points: [{ offered: 100, throughput: 100, latencyMs: { p50: 1, p99: 100 } }] }
    ])
    assert.include(svg, "a &lt;b&gt;")
    assert.include(svg, "x&amp;y")
    const circles = [...svg.matchAll(/<circle cx="[^"]*" cy="([^"]*)"/g)].map((m) => Number(m[1]))
    // first the p50 point, then the p99 point, then the throughput point
    assert.isTrue(circles[1] < circles[0])
    assert.notInclude(svg, "NaN")
  })

  it("picks round ticks", () => {
    assert.deepStrictEqual(linearTicks(0, 10_000), [0, 2000, 4000, 6000, 8000, 10_000])
    assert.deepStrictEqual(linearTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1])
  })
})
