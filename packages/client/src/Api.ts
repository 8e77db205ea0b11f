/**
 * The gateway's RPC surface: control RPCs plus every actor protocol, proxied by entity id
 * (`<EntityType>.<Rpc>` with `{ entityId, payload }`). Clients and the gateway both build on this group.
 */
import { Schema } from "effect"
import { EntityProxy } from "effect/cluster"
import { Rpc, RpcGroup } from "effect/rpc"
import { GatherRpcs } from "../../../actors/gatherer/protocol.ts"
import { Probe } from "../../../actors/probe/protocol.ts"
import { GraphRpcs, ProxyPartition } from "../../../actors/proxy-partition/protocol.ts"
import { OrderRpcs, SymbolShard } from "../../../actors/symbol-shard/protocol.ts"

export const RunnerStatus = Schema.Struct({
  /** Cluster address `host:port` (or `embedded:<port>` for a single node). */
  address: Schema.String,
  healthy: Schema.Boolean,
  /** Shards this runner holds. */
  shards: Schema.Int,
  /** Entities active on this runner. */
  entities: Schema.Int,
  zone: Schema.NullOr(Schema.String),
  startedAt: Schema.Number,
  /** When the runner last reported (ms since epoch). */
  seenAt: Schema.Number
})
export type RunnerStatus = typeof RunnerStatus.Type

export const ClusterStatus = Schema.Struct({
  /** The runner that answered. */
  self: Schema.String,
  mode: Schema.Literals(["single", "runner"]),
  shardsPerGroup: Schema.Int,
  runners: Schema.Array(RunnerStatus)
})
export type ClusterStatus = typeof ClusterStatus.Type

export class StatusUnavailable extends Schema.TaggedError<StatusUnavailable>()("StatusUnavailable", {
  message: Schema.String
}) {}

export const Status = Rpc.make("Status", { success: ClusterStatus, error: StatusUnavailable })

export const ControlRpcs = RpcGroup.make(Status)

export const TesseraApi = ControlRpcs.merge(EntityProxy.toRpcGroup(Probe))
  .merge(EntityProxy.toRpcGroup(SymbolShard))
  .merge(OrderRpcs)
  .merge(EntityProxy.toRpcGroup(ProxyPartition))
  .merge(GraphRpcs)
  .merge(GatherRpcs)
export type TesseraApi = typeof TesseraApi
