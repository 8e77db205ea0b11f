/**
 * Deadlines that answer on time even when the late work cannot be stopped on time.
 */
import { type Duration, Effect, Fiber, Option, type Scope } from "effect"

/**
 * `effect`, or `orElse()` once `duration` has passed, answered at once either way: `effect` runs in a fiber of
 * `scope`, interrupted in the background at the deadline (or when the caller is). `Effect.timeout` answers only once
 * the loser's interruption has finished, and interrupting a cluster send waits on its transport (a stopped or
 * unreachable runner), so under it a deadline does not bound the request.
 */
export const withDeadline = <A, E, A2, E2>(
  effect: Effect.Effect<A, E>,
  duration: Duration.Duration,
  orElse: () => Effect.Effect<A2, E2>,
  scope: Scope.Scope
): Effect.Effect<A | A2, E | E2> =>
  Effect.flatMap(Effect.forkIn(effect, scope, { startImmediately: true }), (fiber) => {
    const interruptLater = Effect.asVoid(Effect.forkIn(Fiber.interrupt(fiber), scope))
    return Effect.flatMap(
      Effect.onInterrupt(Effect.timeoutOption(Fiber.join(fiber), duration), () => interruptLater),
      (answer): Effect.Effect<A | A2, E | E2> =>
        Option.isSome(answer) ? Effect.succeed(answer.value) : Effect.andThen(interruptLater, orElse())
    )
  })
