import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { ClusterMetrics } from "effect/cluster"
import { seedModules } from "../actors/index.ts"
import { type RunnerProcess, rawRpc, repoRoot, rpcRequest, startProcess } from "./harness.ts"
import { families, parse, value } from "./promText.ts"

let node: RunnerProcess
let dataDir: string

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "tessera-metrics-"))
  node = await startProcess("metrics", { entry: "main", env: { TESSERA_DATA: dataDir } })
}, 90_000)
afterAll(async () => {
  node?.child.kill("SIGKILL")
  await node?.exited
  rmSync(dataDir, { recursive: true, force: true })
})

describe("/metrics on a node's gateway", () => {
  it("exports gateway RPC counts and latency, cluster, storage and process series after traffic", async () => {
    for (let i = 0; i < 5; i++) {
      const { lines } = await rawRpc(
        node.url,
        rpcRequest(String(i), "Probe.Where", { entityId: `m${i % 2}`, payload: {} })
      )
      assert.strictEqual(lines[0]?.exit?._tag, "Success")
    }
    const response = await fetch(`${node.url}/metrics`)
    assert.strictEqual(response.status, 200)
    assert.include(response.headers.get("content-type") ?? "", "text/plain")
    const text = await response.text()
    const samples = parse(text)
    const types = families(text)

    const probe = { rpc: "Probe.Where", entity: "Probe" }
    assert.strictEqual(types.get("tessera_gateway_requests_total"), "counter")
    assert.strictEqual(value(samples, "tessera_gateway_requests_total", { ...probe, outcome: "ok" }), 5)
    assert.strictEqual(value(samples, "tessera_gateway_requests_total", { ...probe, outcome: "error" }), 0)
    assert.strictEqual(types.get("tessera_gateway_request_duration_seconds"), "histogram")
    assert.strictEqual(value(samples, "tessera_gateway_request_duration_seconds_count", probe), 5)
    assert.strictEqual(value(samples, "tessera_gateway_request_duration_seconds_bucket", { ...probe, le: "+Inf" }), 5)
    const sum = value(samples, "tessera_gateway_request_duration_seconds_sum", probe)
    assert.isTrue(sum > 0 && sum < 60, `latency sum ${sum}`)
    assert.strictEqual(value(samples, "tessera_gateway_requests_in_flight"), 0)

    // Effect's cluster metrics: two Probe entities live, all 300 shards on the only node
    assert.strictEqual(value(samples, "effect_cluster_entities", { type: "Probe" }), 2)
    assert.strictEqual(value(samples, "effect_cluster_shards"), 300)
    assert.strictEqual(value(samples, "tessera_shards_held"), 300)

    assert.strictEqual(value(samples, "tessera_storage_up", { store: "sql" }), 1)
    assert.strictEqual(value(samples, "tessera_storage_up", { store: "valkey" }), 1)
    assert.isTrue(value(samples, "process_resident_memory_bytes") > 1e6)
    assert.isTrue(value(samples, "process_cpu_seconds_total") > 0)
    assert.isTrue(value(samples, "nodejs_heap_used_bytes") > 0)
    assert.isTrue(value(samples, "nodejs_eventloop_delay_p99_seconds") >= 0)
    // The delay beyond the monitor's 10 ms timer period: the raw histogram would read at least 0.010 on every
    // scrape, while on a loop that is not busy the gauge reads less (other test files may load the box).
    const medians = [value(samples, "nodejs_eventloop_delay_p50_seconds")]
    for (let i = 0; i < 10 && Math.min(...medians) >= 0.01; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300))
      medians.push(
        value(parse(await (await fetch(`${node.url}/metrics`)).text()), "nodejs_eventloop_delay_p50_seconds")
      )
    }
    assert.isBelow(Math.min(...medians), 0.01, `medians ${medians}`)
  })

  it("counts control RPCs under entity=control, and each call once", async () => {
    const before = parse(await (await fetch(`${node.url}/metrics`)).text())
    const status = { rpc: "Status", entity: "control", outcome: "ok" }
    const count = value(before, "tessera_gateway_requests_total", status)
    const { lines } = await rawRpc(node.url, rpcRequest("s", "Status", null))
    assert.strictEqual(lines[0]?.exit?._tag, "Success", JSON.stringify(lines))
    const after = parse(await (await fetch(`${node.url}/metrics`)).text())
    assert.strictEqual(value(after, "tessera_gateway_requests_total", status), count + 1)
  })
})

/** Metric names a PromQL expression reads (label matchers, grouping clauses, ranges and functions removed). */
const promqlKeywords = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "offset",
  "bool"
])
const metricsIn = (expr: string): Array<string> => {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "")
    .replace(/label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)/g, "$1")
  const names: Array<string> = []
  for (const match of stripped.matchAll(/(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = match[0]
    const isCall = /^\s*\(/.test(stripped.slice((match.index ?? 0) + name.length))
    if (isCall || promqlKeywords.has(name)) continue
    names.push(name)
  }
  return names
}

describe("Grafana dashboard ops/grafana/tessera.json", () => {
  it("is valid JSON whose every panel query names metrics the runtime exports", async () => {
    const text = await (await fetch(`${node.url}/metrics`)).text()
    const exported = new Set(families(text).keys())
    for (const metric of Object.values(ClusterMetrics)) exported.add((metric as { readonly id: string }).id)
    // A labelled family has no series before its first update: the modules' declarations name the rest.
    for (const module of seedModules) for (const name of module.metrics ?? []) exported.add(name)
    const known = (name: string) =>
      exported.has(name) ||
      ["_bucket", "_sum", "_count"].some((s) => name.endsWith(s) && exported.has(name.slice(0, -s.length)))

    const dashboard = JSON.parse(readFileSync(join(repoRoot, "ops", "grafana", "tessera.json"), "utf8"))
    const panels = (dashboard.panels as Array<any>).filter((panel) => panel.type !== "row")
    assert.isAtLeast(panels.length, 10)
    const titles = panels.map((panel) => panel.title).join(" | ")
    for (const view of ["TPS", "Latency", "Error", "Queue", "Shards", "Runners", "Valkey", "Postgres"]) {
      assert.include(titles.toLowerCase(), view.toLowerCase(), `a panel about ${view}`)
    }
    const queries: Array<[string, string]> = []
    for (const panel of panels) {
      assert.isAtLeast(panel.targets?.length ?? 0, 1, `panel ${panel.title} has a query`)
      for (const target of panel.targets) queries.push([panel.title, target.expr])
    }
    for (const variable of dashboard.templating.list)
      if (variable.type === "query") queries.push([variable.name, variable.query])
    for (const [where, expr] of queries) {
      const names = metricsIn(expr)
      assert.isAtLeast(names.length, 1, `${where}: no metric in ${expr}`)
      for (const name of names) assert.isTrue(known(name), `${where}: ${name} is not exported (${expr})`)
    }
  })

  it("the PromQL name extraction sees through functions, matchers and grouping", () => {
    assert.deepStrictEqual(
      metricsIn(
        'histogram_quantile(0.99, sum by (le, rpc) (rate(x_seconds_bucket{a="b(c)"}[5m]))) / clamp_min(y_total, 1e-9)'
      ),
      ["x_seconds_bucket", "y_total"]
    )
    assert.deepStrictEqual(metricsIn("label_values(tessera_shards_held, instance)"), ["tessera_shards_held"])
  })
})
