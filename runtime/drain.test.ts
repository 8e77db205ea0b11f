import { assert, describe, it } from "@effect/vitest"
import { Contract } from "@tessera/contracts"
import { Cause, Context, Duration, Effect, Exit, Layer } from "effect"
import * as Admission from "./admission.ts"
import * as Config from "./config.ts"
import * as Drain from "./drain.ts"

const configWith = (overrides: Partial<Config.TesseraConfigShape>) =>
  Layer.succeed(Config.TesseraConfig)({ ...Config.defaults, ...overrides })

const gateway = Drain.layerAdmission.pipe(
  Layer.provideMerge(Drain.layer),
  Layer.provideMerge(Admission.layerController([])),
  Layer.provideMerge(configWith({}))
)

/** Runs `work` through the gateway's outermost middleware, as one request of an `X.Y` RPC. */
const admit = <A>(work: Effect.Effect<A>) =>
  Effect.flatMap(Contract.Admission, (middleware) =>
    middleware(work as never, { client: { id: 1 }, rpc: { _tag: "X.Y" }, payload: {} } as never)
  )

describe("drain", () => {
  it.effect("admits requests until the node drains, then refuses them with Overloaded without running them", () =>
    Effect.gen(function* () {
      let ran = 0
      const work = Effect.sync(() => ++ran)
      assert.strictEqual((yield* admit(work)) as unknown, 1)
      yield* (yield* Drain.Drain).begin
      const refused = yield* Effect.exit(admit(work))
      assert.isTrue(Exit.isFailure(refused))
      if (Exit.isFailure(refused)) {
        const error = Cause.findErrorOption(refused.cause)
        assert.strictEqual(error._tag === "Some" ? (error.value as Contract.Overloaded)._tag : "none", "Overloaded")
        assert.include(error._tag === "Some" ? (error.value as Contract.Overloaded).message : "", "draining")
      }
      assert.strictEqual(ran, 1, "the refused request did nothing")
    }).pipe(Effect.provide(gateway))
  )

  it.effect("waits for the work it tracks: the sum of every tracked count", () =>
    Effect.gen(function* () {
      const drain = yield* Drain.Drain
      let gatewayA = 2
      yield* drain.track(() => gatewayA)
      yield* drain.track(() => 3)
      assert.strictEqual(drain.inFlight(), 5)
      gatewayA = 0
      assert.strictEqual(drain.inFlight(), 3)
    }).pipe(Effect.provide(Drain.layer.pipe(Layer.provide(configWith({})))))
  )

  it.effect("refuses a grace that is not shorter than the drain timeout, before the node starts", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Layer.build(
          Drain.layer.pipe(
            Layer.provide(configWith({ drainGrace: Duration.seconds(30), drainTimeout: Duration.seconds(30) }))
          )
        ).pipe(Effect.scoped)
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.include(Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "", "TESSERA_DRAIN_GRACE must be shorter")
    })
  )

  it.live("ends its bound on the stop once the node's layers have stopped (a process that goes on is not exited)", () =>
    Effect.gen(function* () {
      const exits: Array<unknown> = []
      const exit = process.exit
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          process.exit = ((code?: number) => void exits.push(code)) as typeof process.exit
        }),
        () =>
          Effect.sync(() => {
            process.exit = exit
          })
      )
      yield* Effect.scoped(
        Effect.flatMap(
          Layer.build(Drain.layer.pipe(Layer.provide(configWith({ drainTimeout: Duration.millis(1000) })))),
          (context) => Context.get(context, Drain.Drain).begin
        )
      )
      // Past the bound: had the watchdog outlived the scope, it would have called process.exit(1) by now.
      yield* Effect.sleep("1500 millis")
      assert.deepStrictEqual(exits, [])
    }).pipe(Effect.scoped)
  )
})
