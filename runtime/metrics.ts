/**
 * `/metrics`: one Effect metric registry rendered by Effect's Prometheus exporter. It holds the cluster's own
 * metrics (`effect_cluster_*`: entities per type, shards, runners, mailbox sizes), Tessera's
 * (`@tessera/platform/Metrics`: gateway RPCs and whatever modules declare) and process figures read at scrape
 * time (CPU, memory, event-loop delay, Postgres and Valkey reachability).
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import { withDeadline } from "@tessera/platform/Deadline"
import { counter, gauge, histogram, registry, type Scalar, type Series, secondsSince } from "@tessera/platform/Metrics"
import { Valkey } from "@tessera/platform/Valkey"
import { Cause, Context, Duration, Effect, type Exit, Metric, type Scope } from "effect"
import { HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import type { Rpc, RpcGroup } from "effect/rpc"
import { SqlClient } from "effect/sql"
import { NodeStatus } from "./NodeStatus.ts"

// --- gateway RPCs --------------------------------------------------------------------------------------

export const rpcRequests = counter(
  "tessera_gateway_requests_total",
  "Gateway RPC requests answered, by RPC tag, entity type and outcome (ok, error, defect, interrupted)",
  ["rpc", "entity", "outcome"]
)
export const rpcDuration = histogram(
  "tessera_gateway_request_duration_seconds",
  "Gateway RPC latency from handler start to reply, by RPC tag",
  { labelNames: ["rpc", "entity"] }
)
export const rpcInFlight = gauge("tessera_gateway_requests_in_flight", "Gateway RPC requests being handled now")

const outcomeOf = (exit: Exit.Exit<unknown, unknown>) =>
  exit._tag === "Success"
    ? "ok"
    : Cause.hasFails(exit.cause)
      ? "error"
      : Cause.hasDies(exit.cause)
        ? "defect"
        : "interrupted"

interface RpcSeries {
  readonly duration: Series
  readonly ok: Scalar
  readonly error: Scalar
  readonly defect: Scalar
  readonly interrupted: Scalar
}

const seriesFor = (tag: string): RpcSeries => {
  const dot = tag.indexOf(".")
  const entity = dot > 0 ? tag.slice(0, dot) : "control"
  const labels = { rpc: tag, entity }
  return {
    duration: rpcDuration.labels(labels),
    ok: rpcRequests.labels({ ...labels, outcome: "ok" }),
    error: rpcRequests.labels({ ...labels, outcome: "error" }),
    defect: rpcRequests.labels({ ...labels, outcome: "defect" }),
    interrupted: rpcRequests.labels({ ...labels, outcome: "interrupted" })
  }
}

const instrumentHandler = (tag: string, entry: Rpc.Handler<string>): Rpc.Handler<string> => {
  const series = seriesFor(tag)
  const record = (start: number) => (exit: Exit.Exit<unknown, unknown>) =>
    Effect.sync(() => {
      rpcInFlight.dec()
      series.duration.observe(secondsSince(start))
      series[outcomeOf(exit)].inc()
    })
  return {
    ...entry,
    handler: (request, options) => {
      const result = entry.handler(request, options)
      // streams and fork/uninterruptible wrappers pass through untimed
      if (!Effect.isEffect(result)) return result
      rpcInFlight.inc()
      return Effect.onExit(result, record(performance.now()))
    }
  }
}

/**
 * Wraps every handler of `group` found in the context of `self` with request counting and latency timing.
 * Apply it to `RpcServer.toHttpEffect(group, ...)`, which reads its handlers from the context once.
 */
export const instrumentRpcHandlers =
  (group: RpcGroup.Any) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.updateContext(self, (context: Context.Context<R>) => {
      const map = new Map(context.mapUnsafe)
      for (const rpc of (group as RpcGroup.RpcGroup<Rpc.Any>).requests.values()) {
        const entry = map.get(rpc.key) as Rpc.Handler<string> | undefined
        if (entry !== undefined) map.set(rpc.key, instrumentHandler(rpc._tag, entry))
      }
      return Context.makeUnsafe(map) as Context.Context<R>
    })

// --- process and node figures read at scrape time -------------------------------------------------------

const shardsHeld = gauge("tessera_shards_held", "Shards this runner holds now")
const postgresUp = gauge("tessera_storage_up", "1 when the storage answered a probe at the last scrape", ["store"])
const storagePing = gauge("tessera_storage_ping_seconds", "Round trip of the storage probe at the last scrape", [
  "store"
])
const sqlUp = postgresUp.labels({ store: "sql" })
const valkeyUp = postgresUp.labels({ store: "valkey" })
const sqlPing = storagePing.labels({ store: "sql" })
const valkeyPing = storagePing.labels({ store: "valkey" })

type LoopDelay = ReturnType<typeof monitorEventLoopDelay>
/** The event-loop delay monitor's timer period. */
const LOOP_DELAY_RESOLUTION_MS = 10

// Node's conventional names, so not under the tessera_ prefix.
const loopDelayP50 = registry.gauge("nodejs_eventloop_delay_p50_seconds", "Event-loop delay median since last scrape")
const loopDelayP99 = registry.gauge("nodejs_eventloop_delay_p99_seconds", "Event-loop delay p99 since last scrape")
const loopDelayMax = registry.gauge("nodejs_eventloop_delay_max_seconds", "Event-loop delay max since last scrape")

/** Samples the event-loop delay since the last scrape into its gauges, then starts a new window. */
const sampleLoopDelay = (delay: LoopDelay) => {
  // The histogram records each timer interval, resolution included: the delay is the part beyond it.
  const beyond = (nanos: number) => Math.max(0, nanos / 1e6 - LOOP_DELAY_RESOLUTION_MS) / 1000
  loopDelayP50.set(beyond(delay.percentile(50)))
  loopDelayP99.set(beyond(delay.percentile(99)))
  loopDelayMax.set(beyond(delay.max))
  delay.reset()
}

/**
 * Process figures as series read when the registry is exported (Prometheus' conventional names), registered
 * for the scope's lifetime.
 */
const registerProcessSeries = Effect.acquireRelease(
  Effect.sync(() => {
    const startedAt = Date.now() / 1000
    const context = registry.context
    const read = (name: string, description: string, get: () => number) =>
      Metric.registerUnsafe(Metric.gauge(name, { description }), context, {
        get: () => ({ value: get() }),
        update: () => {},
        modify: () => {}
      })
    const cpu = Metric.registerUnsafe(
      Metric.counter("process_cpu_seconds_total", { description: "User and system CPU time", incremental: true }),
      context,
      {
        get: () => {
          const usage = process.cpuUsage()
          return { count: (usage.user + usage.system) / 1e6, incremental: true }
        },
        update: () => {},
        modify: () => {}
      }
    )
    return [
      cpu,
      read("process_resident_memory_bytes", "Resident set size", () => process.memoryUsage.rss()),
      read("process_start_time_seconds", "Process start, seconds since the epoch", () => startedAt),
      read("nodejs_heap_used_bytes", "V8 heap in use", () => process.memoryUsage().heapUsed),
      read("nodejs_heap_total_bytes", "V8 heap reserved", () => process.memoryUsage().heapTotal),
      read(
        "nodejs_external_memory_bytes",
        "Memory of C++ objects bound to JS (buffers)",
        () => process.memoryUsage().external
      )
    ]
  }),
  (registrations) =>
    Effect.sync(() => {
      for (const registration of registrations) registration.remove()
    })
)

// Bounded by withDeadline, not Effect.timeout: interrupting a query on a black-holed connection waits on the network,
// and under Effect.timeout the scrape waited with it, so /metrics hung for as long as storage did.
const probe = <E>(check: Effect.Effect<unknown, E>, up: Scalar, ping: Scalar, scope: Scope.Scope) =>
  Effect.suspend(() => {
    const start = performance.now()
    return withDeadline(check, Duration.seconds(1), () => Effect.fail("timeout" as const), scope).pipe(
      Effect.matchCause({
        onFailure: () => {
          up.set(0)
          ping.set(Number.NaN)
        },
        onSuccess: () => {
          up.set(1)
          ping.set(secondsSince(start))
        }
      })
    )
  })

/** The whole exposition text: every series in the registry, Effect's cluster metrics and Tessera's alike. */
export const render = Effect.sync(() => PrometheusMetrics.formatUnsafe(registry.context))

/**
 * The `/metrics` handler, with this node's services captured: probes storage, samples shards held, then
 * renders. Starts the event-loop delay monitor.
 */
export const makeHandler = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const valkey = yield* Valkey
  const scope = yield* Effect.scope
  const status = yield* NodeStatus
  yield* registerProcessSeries
  // One monitor per gateway, for the gateway's lifetime.
  const loopDelay = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const monitor = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS })
      monitor.enable()
      return monitor
    }),
    (monitor) => Effect.sync(() => monitor.disable())
  )
  return Effect.gen(function* () {
    shardsHeld.set(yield* status.shardsHeld)
    yield* Effect.all(
      [
        probe(sql`SELECT 1`, sqlUp, sqlPing, scope),
        probe(valkey.exists("tessera:health"), valkeyUp, valkeyPing, scope)
      ],
      {
        concurrency: 2,
        discard: true
      }
    )
    sampleLoopDelay(loopDelay)
    const body = yield* render
    return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  })
})
