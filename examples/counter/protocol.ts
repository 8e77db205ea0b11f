/**
 * The counter's wire contract: an entity `Counter` (one per id) with `Increment` and `Get`. Clients and the host
 * both build on this file alone.
 */
import { Contract } from "@tessera/contracts"
import { Schema } from "effect"
import { Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"

/** Adds `by` to the counter; answers the new value. */
export const Increment = Rpc.make("Increment", {
  payload: { by: Schema.Int.check(Schema.isBetween({ minimum: -1_000_000, maximum: 1_000_000 })) },
  success: Schema.Int
})

/** The counter's value (0 for a counter never incremented). */
export const Get = Rpc.make("Get", { success: Schema.Int })

export const Counter = Entity.make("Counter", [Increment, Get])

export const CounterContract = Contract.make({ name: "counter", entities: [Counter] })
