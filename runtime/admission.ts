/**
 * Admission control: the gateway's outermost RPC middleware. Every request takes its weight (1, or what its module
 * declares, e.g. the orders a `PlaceMany` carries) from two bounds, this runner's and its connection's, for as long
 * as it runs. A request that would pass a bound is answered `Overloaded` at once, before any decoding of work or
 * message to a shard, so past saturation the runner keeps serving what it admitted at its normal latency instead
 * of queueing everything (each queue then grows without bound and every reply is late).
 *
 * The runner's bound adapts to latency (additive increase, multiplicative decrease, as TCP's congestion window):
 * every `windowMs`, if more than a tenth of the requests completed in the window took longer than `targetMs`, the
 * limit shrinks by a quarter (not below `minimum`); if the window's work reached most of the limit and stayed fast,
 * it grows by a tenth (not above `runner`). So the limit settles near what the runner completes within the target,
 * whatever its speed today, and an accepted request keeps a bounded wait.
 *
 * A window is also slow when the event loop ran late by more than half the target: a request waits that long in the
 * socket before the gateway reads it (and can shed it), which the handlers' timings never see. Past saturation that
 * wait, not the handlers, was most of the latency of accepted and refused requests alike.
 *
 * A request is always admitted when nothing of its scope is in flight, so one request larger than a bound still
 * passes on an idle runner.
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Contract, Control, type Module } from "@tessera/contracts"
import { withDeadline } from "@tessera/platform/Deadline"
import { counter, gauge } from "@tessera/platform/Metrics"
import { Context, Duration, Effect, Layer } from "effect"
import { TesseraConfig } from "./config.ts"

const overloaded = counter(
  "tessera_gateway_overloaded_total",
  "Gateway requests refused with Overloaded, by the bound they would have passed (runner, connection)",
  ["bound"]
)
const overloadedRunner = overloaded.labels({ bound: "runner" })
const overloadedConnection = overloaded.labels({ bound: "connection" })
const expired = counter(
  "tessera_gateway_admission_expired_total",
  "Admitted requests still running after TESSERA_ADMISSION_HOLD_MS, whose weight stopped counting against the bounds"
)
const lateWindows = counter(
  "tessera_gateway_admission_late_loop_total",
  "Admission windows in which the event loop ran late by more than half TESSERA_ADMISSION_TARGET_MS (limit shrunk)"
)
const timedOut = counter(
  "tessera_gateway_request_timeouts_total",
  "Entity-proxy requests answered RequestTimeout at TESSERA_REQUEST_TIMEOUT_MS (the entity did not answer in time)"
)
const admittedWeight = gauge("tessera_gateway_admitted_weight", "Admission weight of the requests being handled now")
const admissionLimit = gauge(
  "tessera_gateway_admission_limit",
  "The runner's current admission limit (adapted to latency, at most TESSERA_MAX_IN_FLIGHT)"
)

/** Every module's admission weights by RPC tag. */
export const weightsOf = (modules: ReadonlyArray<Module.Any>): ReadonlyMap<string, Module.AdmissionWeight> => {
  // A request shed while it was read is refused by its handler: it holds no weight.
  const weights = new Map<string, Module.AdmissionWeight>([[Control.OverloadedTag, () => 0]])
  for (const module of modules) {
    for (const [tag, weight] of Object.entries(module.admissionWeights ?? {})) weights.set(tag, weight)
  }
  return weights
}

/** Bounds of one admission controller. */
export interface Bounds {
  /** Weight in flight on the runner, at most (the adaptive limit's ceiling). */
  readonly runner: number
  /** The adaptive limit's floor. */
  readonly minimum: number
  /** Latency an admitted request should stay under, in milliseconds. */
  readonly targetMs: number
  /** How often the limit adapts, in milliseconds. */
  readonly windowMs: number
  /** Weight in flight per client connection, at most. */
  readonly connection: number
  /** The retry hint sent with `Overloaded`. */
  readonly retryAfterMs: number
  /**
   * How long an admitted request holds its weight, in milliseconds. Past it the request still runs, but its weight
   * is given back (checked when a bound is reached), so requests stuck for good cannot refuse all later ones.
   */
  readonly holdMs: number
}

/** One admitted request's hold on the bounds. */
interface Hold {
  readonly weight: number
  readonly connection: number
  readonly start: number
  released: boolean
}

/**
 * The admission middleware over `bounds`. Its counts live in the returned closure (one per gateway): a `Map` entry
 * per connection with work in flight, deleted when it drains.
 */
export const make = (
  bounds: Bounds,
  weights: ReadonlyMap<string, Module.AdmissionWeight>,
  /** The event loop's delay over the window now ending, in milliseconds; called once per window. */
  loopDelayMs: () => number = () => 0
) => {
  let inFlight = 0
  let limit = bounds.runner
  // The current window: completions, those over target, the most weight in flight, its start.
  let completed = 0
  let slow = 0
  let peak = 0
  let windowStart = performance.now()
  admissionLimit.set(limit)
  const perConnection = new Map<number, number>()
  const holds = new Set<Hold>()
  let sweptAt = 0
  const release = (hold: Hold) => {
    if (hold.released) return
    hold.released = true
    holds.delete(hold)
    inFlight -= hold.weight
    admittedWeight.set(inFlight)
    const left = (perConnection.get(hold.connection) ?? hold.weight) - hold.weight
    if (left > 0) perConnection.set(hold.connection, left)
    else perConnection.delete(hold.connection)
  }
  /** Gives back the weight of requests held past `holdMs` (at most every 100 ms: only on the refusal path). */
  const sweep = (now: number) => {
    if (now - sweptAt < 100) return
    sweptAt = now
    for (const hold of holds) {
      if (now - hold.start > bounds.holdMs) {
        release(hold)
        expired.inc()
      }
    }
  }
  const adapt = (now: number) => {
    const late = loopDelayMs() > bounds.targetMs / 2
    if (late) lateWindows.inc()
    if (late || slow * 10 > completed) limit = Math.max(bounds.minimum, Math.floor(limit * 0.75))
    else if (peak >= limit * 0.8) limit = Math.min(bounds.runner, Math.ceil(limit * 1.1))
    admissionLimit.set(limit)
    completed = 0
    slow = 0
    peak = inFlight
    windowStart = now
  }
  const refuse = (scope: string, held: number, bound: number) =>
    Effect.fail(
      new Contract.Overloaded({
        message: `the ${scope} is at its in-flight bound (${held} of ${bound}); retry after ${bounds.retryAfterMs} ms or send less`,
        retryAfterMs: bounds.retryAfterMs
      })
    )
  const middleware: Contract.Admission["Service"] = (effect, { client, rpc, payload }) => {
    const weigh = weights.get(rpc._tag)
    const weight = weigh === undefined ? 1 : weigh(payload)
    if (!(weight > 0)) return effect
    const id = client.id
    const start = performance.now()
    if (inFlight > 0 && inFlight + weight > limit) {
      sweep(start)
      if (inFlight > 0 && inFlight + weight > limit) return shed(inFlight, limit)
    }
    let mine = perConnection.get(id) ?? 0
    if (mine > 0 && mine + weight > bounds.connection) {
      sweep(start)
      mine = perConnection.get(id) ?? 0
      if (mine > 0 && mine + weight > bounds.connection) {
        overloadedConnection.inc()
        return refuse("connection", mine, bounds.connection)
      }
    }
    inFlight += weight
    if (inFlight > peak) peak = inFlight
    perConnection.set(id, mine + weight)
    admittedWeight.set(inFlight)
    const hold: Hold = { weight, connection: id, start, released: false }
    holds.add(hold)
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        const now = performance.now()
        completed++
        if (now - start > bounds.targetMs) slow++
        if (now - windowStart >= bounds.windowMs) adapt(now)
        release(hold)
      })
    )
  }
  /** Refuses a request at the runner's bound (`held` of `bound` in flight when it came). */
  const shed = (held: number, bound: number) => {
    overloadedRunner.inc()
    return refuse("runner", held, bound)
  }
  /**
   * Whether a request of `tag` with this (still undecoded, JSON) payload would be refused at the runner's bound now:
   * the gateway asks while it reads a request, so a refused one is never decoded. The middleware decides again for
   * the requests this lets through.
   */
  const wouldShed = (tag: string, payload: unknown): boolean => {
    if (inFlight === 0) return false
    const weigh = weights.get(tag)
    const weight = weigh === undefined ? 1 : weigh(payload)
    return weight > 0 && inFlight + weight > limit
  }
  return {
    middleware,
    shed,
    wouldShed,
    inFlight: () => inFlight,
    limit: () => limit,
    connections: () => perConnection.size
  }
}

/**
 * One gateway's admission controller, shared by its RPC parser (which sheds) and its middleware, with the tags of the
 * requests it bounds in time (the entity proxies').
 */
export class Controller extends Context.Service<
  Controller,
  ReturnType<typeof make> & { readonly timedTags: ReadonlySet<string> }
>()("tessera/runtime/admission/Controller") {}

const loopDelayResolutionMs = 5

/** The gateway's admission controller, bounded by `TESSERA_MAX_IN_FLIGHT` and `TESSERA_MAX_IN_FLIGHT_PER_CONNECTION`. */
export const layerController = (modules: ReadonlyArray<Module.Any>) =>
  Layer.effect(Controller)(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const delay = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const monitor = monitorEventLoopDelay({ resolution: loopDelayResolutionMs })
          monitor.enable()
          return monitor
        }),
        (monitor) => Effect.sync(() => monitor.disable())
      )
      // The window's p90 beyond the timer's own period: one stall (a GC) is not a queue.
      const loopDelayMs = () => {
        const late = delay.count === 0 ? 0 : Math.max(0, delay.percentile(90) / 1e6 - loopDelayResolutionMs)
        delay.reset()
        return late
      }
      const controller = make(
        {
          runner: config.maxInFlight,
          minimum: Math.min(config.maxInFlight, config.minInFlight),
          targetMs: config.admissionTargetMs,
          windowMs: 100,
          connection: config.maxInFlightPerConnection,
          retryAfterMs: config.overloadRetryAfterMs,
          holdMs: config.admissionHoldMs
        },
        weightsOf(modules),
        loopDelayMs
      )
      return { ...controller, timedTags: entityProxyTags(modules) }
    })
  )

/** The tags of the entity-proxy RPCs of `modules` (`<EntityType>.<Rpc>` and its `Discard` form). */
const entityProxyTags = (modules: ReadonlyArray<Module.Any>): ReadonlySet<string> => {
  const tags = new Set<string>()
  for (const module of modules) {
    for (const entity of module.contract.entities) {
      for (const tag of entity.protocol.requests.keys()) {
        tags.add(`${entity.type}.${tag}`)
        tags.add(`${entity.type}.${tag}Discard`)
      }
    }
  }
  return tags
}

/**
 * The gateway's admission middleware: its controller's, and a deadline on entity-proxy requests. Sharding retries a
 * send while no runner holds its shard (a runner dropped its shards, a peer is stopped), for good: past
 * `TESSERA_REQUEST_TIMEOUT_MS` the request is answered `RequestTimeout` at once and its weight given back, while the
 * send is interrupted in the background.
 */
export const layer = Layer.effect(Contract.Admission)(
  Effect.gen(function* () {
    const controller = yield* Controller
    const { requestTimeoutMs } = yield* TesseraConfig
    const scope = yield* Effect.scope
    const deadline = Duration.millis(requestTimeoutMs)
    const middleware: Contract.Admission["Service"] = (effect, options) => {
      if (!controller.timedTags.has(options.rpc._tag)) return controller.middleware(effect, options)
      const late = () =>
        Effect.fail(
          new Contract.RequestTimeout({
            rpc: options.rpc._tag,
            timeoutMs: requestTimeoutMs,
            message: `${options.rpc._tag} got no answer within ${requestTimeoutMs} ms (its shard has no runner yet, or its runner is unreachable); it may still complete: retry with the same keys`
          })
        )
      return controller.middleware(
        withDeadline(
          effect,
          deadline,
          () =>
            Effect.andThen(
              Effect.sync(() => timedOut.inc()),
              late()
            ),
          scope
        ),
        options
      )
    }
    return middleware
  })
)
