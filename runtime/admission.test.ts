import { assert, describe, it } from "@effect/vitest"
import { Contract } from "@tessera/contracts"
import { Deferred, Effect, Exit, Fiber } from "effect"
import * as Admission from "./admission.ts"

const weights = Admission.weightsOf([
  {
    name: "orders",
    admissionWeights: { "Orders.PlaceMany": (payload: unknown) => (payload as { readonly n: number }).n }
  } as never
])

/** Runs `effect` through the middleware as a request of `tag` from connection `client`. */
const request = (
  admission: ReturnType<typeof Admission.make>,
  client: number,
  tag: string,
  payload: unknown,
  effect: Effect.Effect<unknown, unknown>
) =>
  admission.middleware(effect as never, {
    client: { id: client } as never,
    requestId: 0n as never,
    rpc: { _tag: tag } as never,
    payload,
    headers: {} as never
  }) as Effect.Effect<unknown, unknown>

describe("admission control", () => {
  it.live("refuses past the runner bound with Overloaded at once, and admits again once work drains", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 10, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 100, retryAfterMs: 25, holdMs: 60_000 },
        weights
      )
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.forkChild(request(admission, 1, "Orders.PlaceMany", { n: 8 }, Deferred.await(gate)), {
        startImmediately: true
      })
      assert.strictEqual(admission.inFlight(), 8)
      let ran = false
      const refused = yield* Effect.exit(
        request(
          admission,
          2,
          "Orders.PlaceMany",
          { n: 3 },
          Effect.sync(() => (ran = true))
        )
      )
      assert.isTrue(Exit.isFailure(refused))
      const error = Exit.isFailure(refused) ? refused.cause : undefined
      assert.include(String(error), "Overloaded")
      assert.isFalse(ran, "a refused request's handler never runs")
      // A light request still fits beside the held one.
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(request(admission, 2, "Status", {}, Effect.void))))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(held)
      assert.strictEqual(admission.inFlight(), 0)
      assert.strictEqual(admission.connections(), 0, "a drained connection leaves no entry behind")
      const again = yield* Effect.exit(request(admission, 2, "Orders.PlaceMany", { n: 3 }, Effect.succeed("ok")))
      assert.deepStrictEqual(again, Exit.succeed("ok"))
    })
  )

  it.live("the typed error carries the retry hint", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 1, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 1, retryAfterMs: 25, holdMs: 60_000 },
        weights
      )
      const gate = yield* Deferred.make<void>()
      yield* Effect.forkChild(request(admission, 1, "Status", {}, Deferred.await(gate)), { startImmediately: true })
      const error = yield* Effect.flip(request(admission, 1, "Status", {}, Effect.void))
      assert.instanceOf(error, Contract.Overloaded)
      assert.strictEqual((error as Contract.Overloaded).retryAfterMs, 25)
      yield* Deferred.succeed(gate, undefined)
    })
  )

  it.live("bounds each connection on its own", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 100, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 10, retryAfterMs: 50, holdMs: 60_000 },
        weights
      )
      const gate = yield* Deferred.make<void>()
      yield* Effect.forkChild(request(admission, 1, "Orders.PlaceMany", { n: 9 }, Deferred.await(gate)), {
        startImmediately: true
      })
      const sameConnection = yield* Effect.flip(request(admission, 1, "Orders.PlaceMany", { n: 2 }, Effect.void))
      assert.include((sameConnection as Contract.Overloaded).message, "connection")
      const otherConnection = yield* Effect.exit(request(admission, 2, "Orders.PlaceMany", { n: 9 }, Effect.void))
      assert.isTrue(Exit.isSuccess(otherConnection))
      yield* Deferred.succeed(gate, undefined)
    })
  )

  it.live("admits a request larger than a bound when nothing else is in flight", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 10, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 10, retryAfterMs: 50, holdMs: 60_000 },
        weights
      )
      const exit = yield* Effect.exit(request(admission, 1, "Orders.PlaceMany", { n: 500 }, Effect.succeed(1)))
      assert.deepStrictEqual(exit, Exit.succeed(1))
      assert.strictEqual(admission.inFlight(), 0)
    })
  )

  it.live("releases the weight of a request that fails or is interrupted", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 10, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 10, retryAfterMs: 50, holdMs: 60_000 },
        weights
      )
      yield* Effect.exit(request(admission, 1, "Orders.PlaceMany", { n: 5 }, Effect.fail("boom")))
      assert.strictEqual(admission.inFlight(), 0)
      const fiber = yield* Effect.forkChild(request(admission, 1, "Orders.PlaceMany", { n: 5 }, Effect.never), {
        startImmediately: true
      })
      assert.strictEqual(admission.inFlight(), 5)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(admission.inFlight(), 0)
    })
  )

  it.live("shrinks the runner's limit while admitted requests are slow, and grows it back once they are fast", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 1000, minimum: 100, targetMs: 5, windowMs: 0, connection: 10_000, retryAfterMs: 50, holdMs: 60_000 },
        weights
      )
      const slow = (n: number) => request(admission, 1, "Orders.PlaceMany", { n }, Effect.sleep("20 millis"))
      for (let i = 0; i < 3; i++) yield* slow(10)
      assert.strictEqual(admission.limit(), 421, "1000 * 0.75^3, rounded down at each step")
      for (let i = 0; i < 20; i++) yield* slow(10)
      assert.strictEqual(admission.limit(), 100, "never below the floor")
      // At the floor, a request of 90 beside 20 in flight is refused.
      const gate = yield* Deferred.make<void>()
      yield* Effect.forkChild(request(admission, 2, "Orders.PlaceMany", { n: 20 }, Deferred.await(gate)), {
        startImmediately: true
      })
      const refused = yield* Effect.flip(request(admission, 1, "Orders.PlaceMany", { n: 90 }, Effect.void))
      assert.instanceOf(refused, Contract.Overloaded)
      yield* Deferred.succeed(gate, undefined)
      // Fast requests that fill most of the limit grow it by a tenth per window.
      const fast = (n: number) => request(admission, 1, "Orders.PlaceMany", { n }, Effect.void)
      yield* fast(90)
      assert.isAbove(admission.limit(), 100)
      for (let i = 0; i < 60; i++) yield* fast(admission.limit())
      assert.strictEqual(admission.limit(), 1000, "back to the ceiling, not above it")
    })
  )

  it.live("shrinks the limit while the event loop runs late, though the requests it times are fast", () =>
    Effect.gen(function* () {
      let lagMs = 40
      const admission = Admission.make(
        { runner: 1000, minimum: 100, targetMs: 50, windowMs: 0, connection: 10_000, retryAfterMs: 50, holdMs: 60_000 },
        weights,
        () => lagMs
      )
      const fast = (n: number) => request(admission, 1, "Orders.PlaceMany", { n }, Effect.void)
      for (let i = 0; i < 3; i++) yield* fast(900)
      assert.strictEqual(admission.limit(), 421, "a loop 40 ms late (over half the 50 ms target) is a slow window")
      lagMs = 20
      for (let i = 0; i < 60; i++) yield* fast(admission.limit())
      assert.strictEqual(admission.limit(), 1000, "grows back once the loop is on time")
    })
  )

  it.live("gives back the weight of a request stuck past the hold limit, so later requests are admitted again", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 10, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 10, retryAfterMs: 50, holdMs: 150 },
        weights
      )
      // A request that never finishes (its shard never answers), holding the whole bound.
      const stuck = yield* Effect.forkChild(request(admission, 1, "Orders.PlaceMany", { n: 10 }, Effect.never), {
        startImmediately: true
      })
      const refused = yield* Effect.flip(request(admission, 1, "Orders.PlaceMany", { n: 1 }, Effect.void))
      assert.instanceOf(refused, Contract.Overloaded, "refused while the stuck request is young")
      yield* Effect.sleep("250 millis")
      const after = yield* Effect.exit(request(admission, 1, "Orders.PlaceMany", { n: 5 }, Effect.succeed("ok")))
      assert.deepStrictEqual(after, Exit.succeed("ok"), "admitted once the stuck one is past the hold limit")
      assert.strictEqual(admission.inFlight(), 0, "the stuck request no longer counts")
      // When it does end at last, its weight is not given back twice.
      yield* Fiber.interrupt(stuck)
      assert.strictEqual(admission.inFlight(), 0)
      assert.strictEqual(admission.connections(), 0)
    })
  )
})
