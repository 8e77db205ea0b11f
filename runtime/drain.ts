/**
 * Drain on SIGTERM: a node that is told to stop leaves the cluster without dropping work.
 *
 * The node's layers stop in reverse order of their start, and this drain is started last, so it runs first:
 * 1. it marks the node draining: `/ready` answers 503 (`draining`), so a load balancer stops routing to it, and the
 *    gateway refuses every new request with a typed `Overloaded` (nothing done; another runner serves the retry);
 * 2. after `TESSERA_DRAIN_GRACE` (for a load balancer that polls `/ready`), it waits for the requests the gateway
 *    admitted to finish (for half of what is left of `TESSERA_DRAIN_TIMEOUT` at most);
 * 3. then the rest stops as Effect's cluster stops it: the gateway closes its connections (a short grace, as
 *    nothing runs on them any more), each entity type's teardown unregisters the runner (peers drop it from their
 *    rings at their next assignment refresh, instead of waiting out health checks), the entities stop and flush
 *    (a symbol shard writes its last batch), and sharding releases every shard lock so peers acquire them at once.
 * The whole stop is bounded: past `TESSERA_DRAIN_TIMEOUT` the process exits 1 with a line naming the timeout, well
 * before an orchestrator's kill (ECS `stopTimeout` is set above it).
 */
import { Contract } from "@tessera/contracts"
import { invalid } from "@tessera/platform/ConfigKit"
import { Context, Duration, Effect, Fiber, Layer } from "effect"
import * as Admission from "./admission.ts"
import { TesseraConfig } from "./config.ts"

export class Drain extends Context.Service<
  Drain,
  {
    /** True once the node began to stop: `/ready` answers 503 and the gateway refuses new requests. */
    readonly isDraining: () => boolean
    /**
     * Marks the node draining (idempotent) and starts the bound on the stop: past `TESSERA_DRAIN_TIMEOUT` the
     * process exits 1, unless the node's layers have all stopped by then.
     */
    readonly begin: Effect.Effect<void>
    /** Work the drain waits for before the node's services stop: `inFlight` is read until it is 0. */
    readonly track: (inFlight: () => number) => Effect.Effect<void>
    /** The work tracked in flight now. */
    readonly inFlight: () => number
  }
>()("tessera/runtime/Drain") {}

/** The drain state, shared by the gateway (refusals, `/ready`, in-flight work) and the shutdown sequence. */
export const layer = Layer.effect(Drain)(
  Effect.gen(function* () {
    const config = yield* TesseraConfig
    // Checked here, before the node joins: the shutdown sequence itself is built last.
    if (!Duration.isLessThan(config.drainGrace, config.drainTimeout)) {
      return yield* Effect.fail(invalid("TESSERA_DRAIN_GRACE must be shorter than TESSERA_DRAIN_TIMEOUT"))
    }
    let draining = false
    let watchdog: Fiber.Fiber<void> | undefined
    const tracked: Array<() => number> = []
    // Built before the cluster, so this runs after it stopped: a node whose stop ended (or one hosted in a process
    // that goes on, such as a test) is not exited later.
    yield* Effect.addFinalizer(() => (watchdog === undefined ? Effect.void : Fiber.interrupt(watchdog)))
    const exitLate = Effect.sleep(config.drainTimeout).pipe(
      Effect.andThen(
        Effect.sync(() => {
          process.stderr.write(
            `tessera drain: not stopped within TESSERA_DRAIN_TIMEOUT (${Duration.format(config.drainTimeout)}); exiting\n`
          )
          process.exit(1)
        })
      )
    )
    return Drain.of({
      isDraining: () => draining,
      begin: Effect.suspend(() => {
        if (draining) return Effect.void
        draining = true
        // Detached: it must outlive the scopes that close while the node stops.
        return Effect.map(Effect.forkDetach(exitLate), (fiber) => {
          watchdog = fiber
        })
      }),
      track: (inFlight) =>
        Effect.sync(() => {
          tracked.push(inFlight)
        }),
      inFlight: () => {
        let sum = 0
        for (const count of tracked) sum += count()
        return sum
      }
    })
  })
)

/**
 * The gateway's outermost middleware: admission control, and while the node drains a typed `Overloaded` for every
 * new request (nothing of it runs), which clients already retry; a load balancer sends the retry elsewhere.
 */
export const layerAdmission = Layer.effect(Contract.Admission)(
  Effect.gen(function* () {
    const drain = yield* Drain
    const admission = yield* Contract.Admission
    const config = yield* TesseraConfig
    const refusal = Effect.fail(
      new Contract.Overloaded({
        message: "this runner is draining (stopping): nothing was done; retry, another runner serves the request",
        retryAfterMs: config.overloadRetryAfterMs
      })
    )
    return Contract.Admission.of((effect, options) => (drain.isDraining() ? refusal : admission(effect, options)))
  })
).pipe(Layer.provide(Admission.layer))

/** How often the drain looks at the work in flight. */
const pollMs = 20

/** The shutdown sequence (steps 1 and 2 above, and the bound on the whole stop). */
const layerOnShutdown = Layer.effectDiscard(
  Effect.gen(function* () {
    const drain = yield* Drain
    const config = yield* TesseraConfig
    const timeoutMs = Duration.toMillis(config.drainTimeout)
    const graceMs = Duration.toMillis(config.drainGrace)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const started = Date.now()
        yield* drain.begin
        yield* Effect.logInfo(`draining: /ready answers 503, new requests refused, ${drain.inFlight()} in flight`)
        if (graceMs > 0) yield* Effect.sleep(config.drainGrace)
        // Half of what is left for the admitted requests; the other half is for the hand-off and the flushes.
        const waitUntil = started + graceMs + (timeoutMs - graceMs) / 2
        while (drain.inFlight() > 0 && Date.now() < waitUntil) yield* Effect.sleep(pollMs)
        const left = drain.inFlight()
        yield* left === 0
          ? Effect.logInfo(`drained the gateway in ${Date.now() - started} ms; handing the shards over`)
          : Effect.logWarning(`${left} requests still in flight after ${Date.now() - started} ms; stopping anyway`)
      })
    )
  })
)

/** `node` with the shutdown sequence built after all of it, so that its finalizer is the first to run. */
export const drainFirst = <A, E, R>(node: Layer.Layer<A, E, R>) => layerOnShutdown.pipe(Layer.provideMerge(node))
