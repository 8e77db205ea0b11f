import { assert, describe, it } from "@effect/vitest"
import { Contract, Control } from "@tessera/contracts"
import { Deferred, Effect, Fiber, Schema } from "effect"
import { Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import * as Admission from "./admission.ts"
import { serializationFor } from "./gateway.ts"

const Put = Rpc.make("Put", { payload: { items: Schema.Array(Schema.String) } })
const Store = Entity.make("Store", [Put])
const StoreContract = Contract.make({ name: "store", entities: [Store] })
const api = Contract.api(StoreContract)
const weights = Admission.weightsOf([
  {
    name: "store",
    admissionWeights: {
      "Store.Put": (payload: unknown) =>
        (payload as { readonly payload?: { readonly items?: ReadonlyArray<unknown> } }).payload?.items?.length ?? 1
    }
  } as never
])

const line = (id: string, tag: string, payload: unknown) =>
  `${JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] })}\n`

describe("gateway serialization", () => {
  it.live("sheds a request the runner cannot admit before its payload is decoded, and only then", () =>
    Effect.gen(function* () {
      const admission = Admission.make(
        { runner: 10, minimum: 1, targetMs: 10_000, windowMs: 100, connection: 100, retryAfterMs: 25, holdMs: 60_000 },
        weights
      )
      const parser = serializationFor(api as never, admission).makeUnsafe()
      // Not even valid for its schema: if it were decoded it would be answered a decode failure, not Overloaded.
      const malformed = { entityId: "s1", payload: { items: Array.from({ length: 5 }, () => 42) } }

      const idle = parser.decode(line("1", "Store.Put", malformed)) as ReadonlyArray<{ readonly tag: string }>
      assert.strictEqual(idle[0].tag, "Store.Put", "an idle runner admits whatever comes (the middleware decides)")

      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.forkChild(
        admission.middleware(Deferred.await(gate) as never, {
          client: { id: 1 } as never,
          requestId: 0n as never,
          rpc: { _tag: "Store.Put" } as never,
          payload: { payload: { items: ["a", "b", "c", "d", "e", "f", "g", "h"] } },
          headers: {} as never
        }),
        { startImmediately: true }
      )
      assert.strictEqual(admission.inFlight(), 8)
      const [shed, light] = parser.decode(
        line("2", "Store.Put", malformed) + line("3", "Store.Put", { entityId: "s1", payload: { items: ["x"] } })
      ) as ReadonlyArray<{ readonly id: string; readonly tag: string; readonly payload: unknown }>
      assert.deepStrictEqual(
        { id: shed.id, tag: shed.tag, payload: shed.payload },
        { id: "2", tag: Control.OverloadedTag, payload: { held: 8, bound: 10 } },
        "5 more would pass the bound of 10: sent to the shed RPC with the request's own id"
      )
      assert.strictEqual(light.tag, "Store.Put", "a request that fits beside the held one is let through")
      const refused = yield* Effect.flip(admission.shed(8, 10))
      assert.instanceOf(refused, Contract.Overloaded)
      assert.strictEqual(refused.retryAfterMs, 25)
      const unknown = parser.decode(line("4", "Nope.Nothing", null)) as ReadonlyArray<{ readonly tag: string }>
      assert.strictEqual(unknown[0].tag, Control.UnknownRpcTag)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(held)
    })
  )
})
