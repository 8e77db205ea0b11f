/**
 * The operator's status page (`GET /`): plain HTML whose script polls `/status` (the cluster as runners
 * report it) and `/status/live` (this runner: request counters, latency buckets, entities per type, shards
 * held, recent failovers) once a second and computes rates from the deltas. No assets, no framework.
 *
 * Failovers are runners this node saw healthy that then went silent or vanished; a background check every
 * two seconds records them (the last 20) with the time they were noticed.
 */

import type { Module } from "@tessera/contracts"
import { Effect, Metric, Schedule } from "effect"
import { ShardId, Sharding } from "effect/cluster"
import { HttpServerResponse } from "effect/http"
import { rpcDuration, rpcRequests } from "./metrics.ts"
import { NodeStatus } from "./NodeStatus.ts"

export interface Failover {
  readonly address: string
  /** Epoch millis when this node noticed the runner gone. */
  readonly noticedAt: number
  readonly reason: "unhealthy" | "gone"
}

export interface LiveStatus {
  readonly self: string
  readonly now: number
  /** Requests answered by this gateway since start, per outcome. */
  readonly requests: Readonly<Record<string, number>>
  /** Latency histogram over all RPCs: bucket bounds (seconds) and cumulative counts (last is +Inf). */
  readonly latency: { readonly bounds: ReadonlyArray<number>; readonly cumulative: ReadonlyArray<number> }
  readonly entities: ReadonlyArray<{ readonly type: string; readonly count: number }>
  /** Shards held by this runner, as compact ranges (`1-150,301-450`). */
  readonly shards: string
  readonly failovers: ReadonlyArray<Failover>
  /** The hosted modules' own figures (`Module.statusTiles`), read now. */
  readonly tiles: ReadonlyArray<{
    readonly module: string
    readonly label: string
    readonly title: string
    readonly value: string
  }>
}

const ranges = (ids: ReadonlyArray<number>): string => {
  const parts: Array<string> = []
  let i = 0
  while (i < ids.length) {
    let j = i
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`)
    i = j + 1
  }
  return parts.join(",")
}

const requestTotals = () => {
  const totals: Record<string, number> = { ok: 0, error: 0, defect: 0, interrupted: 0 }
  for (const [labels, series] of rpcRequests.series()) totals[labels.outcome] += series.value
  return totals
}

const latencyTotals = () => {
  let merged: Array<number> | undefined
  for (const [, series] of rpcDuration.series()) {
    const cumulative = series.cumulative()
    if (merged === undefined) merged = [...cumulative]
    else for (let i = 0; i < cumulative.length; i++) merged[i] += cumulative[i]
  }
  return { bounds: rpcDuration.bounds, cumulative: merged ?? [] }
}

/** The `/status/live` handler, with a background failover watch scoped to the gateway. */
export const makeLive = (modules: ReadonlyArray<Module.Any>) =>
  Effect.gen(function* () {
    const status = yield* NodeStatus
    const sharding = yield* Sharding.Sharding
    const failovers: Array<Failover> = []
    const healthySeen = new Set<string>()

    const watch = Effect.gen(function* () {
      const cluster = yield* status.cluster
      const now = Date.now()
      const present = new Map(cluster.runners.map((runner) => [runner.address, runner.healthy]))
      for (const address of healthySeen) {
        const healthy = present.get(address)
        if (healthy === true) continue
        healthySeen.delete(address)
        failovers.unshift({ address, noticedAt: now, reason: healthy === undefined ? "gone" : "unhealthy" })
        if (failovers.length > 20) failovers.length = 20
      }
      for (const [address, healthy] of present) if (healthy) healthySeen.add(address)
    }).pipe(Effect.ignore)
    yield* Effect.forkScoped(Effect.repeat(watch, Schedule.spaced(2000)))

    const live = Effect.gen(function* () {
      const snapshot = yield* Metric.snapshot
      const entities: Array<{ type: string; count: number }> = []
      for (const metric of snapshot) {
        if (metric.id === "effect_cluster_entities" && metric.type === "Gauge") {
          const value = (metric.state as { readonly value: number | bigint }).value
          entities.push({ type: metric.attributes?.type ?? "?", count: Number(value) })
        }
      }
      const shardsPerGroup = (yield* Effect.orElseSucceed(status.cluster, () => undefined))?.shardsPerGroup ?? 0
      const held: Array<number> = []
      for (let i = 1; i <= shardsPerGroup; i++) if (sharding.hasShardId(ShardId.make("default", i))) held.push(i)
      const body: LiveStatus = {
        self: status.self,
        now: Date.now(),
        requests: requestTotals(),
        latency: latencyTotals(),
        entities,
        shards: ranges(held),
        failovers,
        tiles: modules.flatMap((module) =>
          (module.statusTiles ?? []).map((tile) => ({
            module: module.name,
            label: tile.label,
            title: tile.title,
            value: tile.read()
          }))
        )
      }
      return HttpServerResponse.jsonUnsafe(body)
    })
    return live
  })

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tessera status</title>
<style>
  :root { --fg:#1b1f24; --muted:#5f6b7a; --line:#dde2e8; --ok:#1a7f37; --bad:#cf222e; --accent:#0969da; }
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0; background: #f6f8fa; }
  header { background: #24292f; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: #c9d1d9; font-size: 13px; }
  main { padding: 16px 20px; max-width: 1200px; }
  .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-bottom: 16px; }
  .tile { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
  .tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  .tile .value { font-size: 22px; font-variant-numeric: tabular-nums; white-space: nowrap; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; margin-bottom: 14px; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  .ok { color: var(--ok); } .bad { color: var(--bad); } .muted { color: var(--muted); }
  code { font-size: 12px; word-break: break-all; }
  svg { display: block; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header><h1>Tessera</h1><span class="meta" id="self">connecting…</span><span class="meta" id="updated"></span><span id="error"></span></header>
<main>
  <div class="tiles">
    <div class="tile"><div class="label">Runners healthy</div><div class="value" id="runners-healthy">–</div></div>
    <div class="tile"><div class="label">Shards held (cluster)</div><div class="value" id="shards-total">–</div></div>
    <div class="tile"><div class="label">Requests/s (this runner)</div><div class="value" id="rps">–</div></div>
    <div class="tile"><div class="label">Latency p50 / p99</div><div class="value" id="latency">–</div></div>
    <div class="tile"><div class="label">Errors/s</div><div class="value" id="errors">–</div></div>
  </div>
  <div class="tiles" id="module-tiles"></div>
  <section><h2>Request rate, last 2 minutes</h2><svg id="spark" width="100%" height="60" viewBox="0 0 120 60" preserveAspectRatio="none"></svg></section>
  <section><h2>Runners</h2>
    <table id="runners"><thead><tr><th>Address</th><th>Health</th><th>Shards</th><th>Entities</th><th>Zone</th><th>Up</th><th>Seen</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Modules</h2><table id="modules"><thead><tr><th>Module</th><th>Entity types</th><th>Gateway RPCs</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Entities on this runner</h2><table id="entities"><thead><tr><th>Type</th><th>Active</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Shards held by this runner</h2><code id="shards">–</code></section>
  <section><h2>Recent failovers</h2><ul id="failovers"><li class="muted">none seen</li></ul></section>
</main>
<script>
"use strict"
const token = new URLSearchParams(location.search).get("access_token")
const headers = token ? { authorization: "Bearer " + token } : {}
const $ = (id) => document.getElementById(id)
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c])
const ago = (ms) => ms < 1500 ? "now" : ms < 90000 ? Math.round(ms / 1000) + " s" : ms < 5400000 ? Math.round(ms / 60000) + " min" : Math.round(ms / 3600000) + " h"
const fmtSeconds = (s) => !isFinite(s) ? "–" : s < 0.001 ? (s * 1e6).toFixed(0) + " µs" : s < 1 ? (s * 1e3).toFixed(1) + " ms" : s.toFixed(2) + " s"
const quantile = (q, bounds, cum) => {
  const total = cum[cum.length - 1] || 0
  if (total <= 0) return NaN
  const rank = q * total
  for (let i = 0; i < cum.length; i++) if (cum[i] >= rank) {
    if (i === bounds.length) return bounds[bounds.length - 1]
    const lower = i === 0 ? 0 : bounds[i - 1], below = i === 0 ? 0 : cum[i - 1], inBucket = cum[i] - below
    return inBucket === 0 ? bounds[i] : lower + (bounds[i] - lower) * (rank - below) / inBucket
  }
  return NaN
}
let previous = null
const rates = []
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0)
async function tick() {
  try {
    const [clusterRes, liveRes] = await Promise.all([fetch("/status", { headers }), fetch("/status/live", { headers })])
    if (!clusterRes.ok || !liveRes.ok) throw new Error("HTTP " + clusterRes.status + "/" + liveRes.status)
    const cluster = await clusterRes.json(), live = await liveRes.json()
    $("error").textContent = ""
    $("self").textContent = cluster.self + " · " + cluster.mode
    $("updated").textContent = "updated " + new Date(live.now).toLocaleTimeString()
    const healthy = cluster.runners.filter((r) => r.healthy).length
    $("runners-healthy").textContent = healthy + " / " + cluster.runners.length
    $("runners-healthy").className = "value " + (healthy === cluster.runners.length ? "ok" : "bad")
    const held = cluster.runners.filter((r) => r.healthy).reduce((a, r) => a + r.shards, 0)
    $("shards-total").textContent = held + " / " + cluster.shardsPerGroup
    $("runners").tBodies[0].innerHTML = cluster.runners.map((r) =>
      "<tr><td><code>" + esc(r.address) + "</code>" + (r.address === cluster.self ? " <span class=muted>(this)</span>" : "") + "</td>" +
      "<td class=" + (r.healthy ? "ok>healthy" : "bad>silent") + "</td><td>" + r.shards + "</td><td>" + r.entities + "</td>" +
      "<td>" + esc(r.zone || "–") + "</td><td>" + ago(live.now - r.startedAt) + "</td><td>" + ago(live.now - r.seenAt) + " ago</td></tr>").join("")
    $("entities").tBodies[0].innerHTML = live.entities.length === 0 ? "<tr><td class=muted colspan=2>none active</td></tr>" :
      live.entities.map((e) => "<tr><td>" + esc(e.type) + "</td><td>" + e.count + "</td></tr>").join("")
    $("shards").textContent = live.shards || "none"
    $("module-tiles").innerHTML = live.tiles.map((t) =>
      "<div class=tile title='" + esc(t.title).replace(/'/g, "&#39;") + "'><div class=label>" + esc(t.label) + "</div><div class=value>" + esc(t.value) + "</div></div>").join("")
    $("modules").tBodies[0].innerHTML = cluster.modules.map((m) =>
      "<tr><td>" + esc(m.name) + "</td><td>" + m.entityTypes.map(esc).join(", ") + "</td><td>" + (m.rpcs.map(esc).join(", ") || "–") + "</td></tr>").join("")
    $("failovers").innerHTML = live.failovers.length === 0 ? "<li class=muted>none seen</li>" :
      live.failovers.map((f) => "<li><code>" + esc(f.address) + "</code> " + f.reason + ", noticed " + new Date(f.noticedAt).toLocaleTimeString() + " (" + ago(live.now - f.noticedAt) + " ago)</li>").join("")
    if (previous) {
      const dt = (live.now - previous.now) / 1000
      const rps = dt > 0 ? (sum(live.requests) - sum(previous.requests)) / dt : 0
      const eps = dt > 0 ? (live.requests.error + live.requests.defect - previous.requests.error - previous.requests.defect) / dt : 0
      const window = live.latency.cumulative.map((c, i) => c - (previous.latency.cumulative[i] || 0))
      $("rps").textContent = rps.toFixed(rps < 10 ? 1 : 0)
      $("errors").textContent = eps.toFixed(eps < 10 ? 1 : 0)
      $("errors").className = "value " + (eps > 0 ? "bad" : "")
      $("latency").textContent = fmtSeconds(quantile(0.5, live.latency.bounds, window)) + " / " + fmtSeconds(quantile(0.99, live.latency.bounds, window))
      rates.push(rps)
      if (rates.length > 120) rates.shift()
      const max = Math.max(1, ...rates)
      $("spark").innerHTML = '<polyline fill="none" stroke="#0969da" stroke-width="1" vector-effect="non-scaling-stroke" points="' +
        rates.map((r, i) => (120 - rates.length + i + 1) + "," + (58 - 56 * r / max).toFixed(1)).join(" ") + '"/>'
    }
    previous = live
  } catch (error) {
    $("error").textContent = "status unavailable: " + error.message
  }
}
tick()
setInterval(tick, 1000)
</script>
</body>
</html>
`

/** `GET /`: the page itself (static; it reads data with the viewer's token from `?access_token=`). */
export const page = Effect.succeed(
  HttpServerResponse.text(html, { contentType: "text/html; charset=utf-8", headers: { "cache-control": "no-cache" } })
)
