/**
 * Probe: a tiny diagnostic actor. `Where` answers which runner hosts the entity and how many messages it has
 * handled since activation — enough to watch entities spread over runners and move on failover.
 */
import { Contract, Ids } from "@tessera/contracts"
import { Schema } from "effect"
import { Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"

export const ProbeReply = Schema.Struct({
  entityId: Schema.String,
  runner: Schema.String,
  handled: Schema.Int,
  activatedAt: Schema.Number
})
export type ProbeReply = typeof ProbeReply.Type

export const Where = Rpc.make("Where", {
  payload: { note: Schema.optional(Ids.text({ minLength: 0, maxLength: 256 })) },
  success: ProbeReply
})

export const Probe = Entity.make("Probe", [Where])

export const ProbeContract = Contract.make({ name: "probe", entities: [Probe] })
