/**
 * The control RPCs every gateway serves, whatever actors it hosts: the cluster's status as its runners report it,
 * with the modules each node hosts.
 */
import { Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"

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

/** An actor module the answering node hosts: its name and entity types. */
export const ModuleStatus = Schema.Struct({
  name: Schema.String,
  entityTypes: Schema.Array(Schema.String),
  /** Gateway RPCs the module serves besides its entities' proxies. */
  rpcs: Schema.Array(Schema.String)
})
export type ModuleStatus = typeof ModuleStatus.Type

export const ClusterStatus = Schema.Struct({
  /** The runner that answered. */
  self: Schema.String,
  mode: Schema.Literals(["single", "runner"]),
  shardsPerGroup: Schema.Int,
  runners: Schema.Array(RunnerStatus),
  /** The actor modules the answering node hosts. */
  modules: Schema.Array(ModuleStatus)
})
export type ClusterStatus = typeof ClusterStatus.Type

export class StatusUnavailable extends Schema.TaggedError<StatusUnavailable>()("StatusUnavailable", {
  message: Schema.String
}) {}

export const Status = Rpc.make("Status", { success: ClusterStatus, error: StatusUnavailable })

/** A request for an RPC the gateway does not serve (a typo, or a module this node does not host). */
export class UnknownRpc extends Schema.TaggedError<UnknownRpc>()("UnknownRpc", {
  tag: Schema.String,
  message: Schema.String
}) {}

/**
 * The gateway answers every request whose tag it does not serve through this RPC, with `UnknownRpc`: a typed error
 * the client can read, where Effect's RPC server alone would answer a defect.
 */
export const UnknownRpcTag = "Tessera.UnknownRpc"
export const Unknown = Rpc.make(UnknownRpcTag, { payload: { tag: Schema.String }, error: UnknownRpc })

/**
 * The gateway is at its in-flight bound (per runner or per connection) and refused the request before doing any of
 * its work: nothing changed. Retry after `retryAfterMs` (with jitter), or shed the load.
 */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", {
  message: Schema.String,
  retryAfterMs: Schema.Number
}) {}

/**
 * The gateway answered a request sent through its entity proxy at its deadline (`TESSERA_REQUEST_TIMEOUT_MS`): the
 * entity did not answer in time (its shard held by no runner, its runner unreachable or slow). Unlike `Overloaded`
 * the request may still complete: retry with the same idempotency keys.
 */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", {
  rpc: Schema.String,
  timeoutMs: Schema.Number,
  message: Schema.String
}) {}

/**
 * A request the gateway refuses while it reads it (the runner is at its in-flight bound) is sent to this RPC
 * instead, with the bound it would have passed: its payload is never decoded and it reaches no handler, so refusing
 * costs the parse of its line and one small answer.
 */
export const OverloadedTag = "Tessera.Overloaded"
export const Shed = Rpc.make(OverloadedTag, {
  payload: { held: Schema.Number, bound: Schema.Number },
  error: Overloaded
})

export const ControlRpcs = RpcGroup.make(Status, Unknown, Shed)
