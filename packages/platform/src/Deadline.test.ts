// The deadline of Orders.PlaceMany's entries (withDeadline): answered at the deadline even when interrupting the late
// send never finishes (as interrupting a cluster send to a stopped runner waits on its transport), with the send
// interrupted in the background; answered by the send itself when it is in time; and a caller that goes away takes
// the send with it.
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Scope } from "effect"
import { withDeadline } from "./Deadline.ts"

/** Never answers; once interrupted, says so and never finishes its interruption. */
const stuckSend = (interrupted: Deferred.Deferred<void>) =>
  Effect.onInterrupt(Effect.never, () => Effect.andThen(Deferred.succeed(interrupted, undefined), Effect.never))

describe("withDeadline (PlaceMany's per-entry deadline)", () => {
  // A plain promise race: were the deadline to wait on the interruption, the effect would never settle.
  it("answers at the deadline although the late send's interruption never finishes, and interrupts it", async () => {
    const run = Effect.gen(function* () {
      // Left open: the stuck send's interruption never finishes, so closing the scope would wait forever.
      const scope = yield* Scope.make()
      const interrupted = yield* Deferred.make<void>()
      const answer = yield* withDeadline(
        stuckSend(interrupted),
        Duration.millis(20),
        () => Effect.succeed("late"),
        scope
      )
      yield* Deferred.await(interrupted)
      return answer
    })
    const unanswered = new Promise<string>((resolve) => setTimeout(() => resolve("unanswered"), 5000).unref())
    assert.strictEqual(await Promise.race([Effect.runPromise(run), unanswered]), "late")
  })

  it.live("answers with the send's own success or failure when it is in time", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const late = () => Effect.succeed("late")
      assert.strictEqual(yield* withDeadline(Effect.succeed("placed"), Duration.seconds(5), late, scope), "placed")
      const failed = yield* Effect.exit(withDeadline(Effect.fail("refused"), Duration.seconds(5), late, scope))
      assert.deepStrictEqual(failed, Exit.fail("refused"))
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.live("interrupts the send when the caller is interrupted", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const interrupted = yield* Deferred.make<void>()
      // Detached: were the send's interruption to hold the caller, the test's own fiber must not wait on it.
      const caller = yield* Effect.forkDetach(
        withDeadline(stuckSend(interrupted), Duration.seconds(30), () => Effect.succeed("late"), scope)
      )
      yield* Effect.sleep("20 millis")
      // Not waited for: the stuck send's interruption never finishes.
      yield* Effect.forkDetach(Fiber.interrupt(caller))
      yield* Deferred.await(interrupted)
    })
  )
})
