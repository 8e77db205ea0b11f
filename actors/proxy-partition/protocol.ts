/**
 * Graph-proxy partitions: the wire protocol. Vertex ids hash to partitions (`vertexPartition` in `core.ts`, shared by
 * client and runtime: the id's placement key when it has one, see `hashTagRule`, else the whole id); each partition is a `ProxyPartition` entity whose id is the partition number. `GraphRpcs` are
 * gateway-level RPCs that fan out over partitions (BatchGet, KHop) or read partition metadata (Stats).
 *
 * Wire calls: `{"tag":"ProxyPartition.GetVertex","payload":{"entityId":"17","payload":{"id":"alice"}}}` and
 * `{"tag":"Graph.BatchGet","payload":{"ids":["alice","bob"]}}`.
 */
import { Contract, Ids } from "@tessera/contracts"
import { Schema } from "effect"
import { Entity } from "effect/cluster"
import { Rpc, RpcGroup } from "effect/rpc"
import { isJsonObject, MAX_LABEL_LENGTH, MAX_VERTEX_ID_LENGTH } from "./core.ts"

/**
 * Placement keys (grammar in `core.ts`, `placementKeyProblem`): derived from the vertex id by the deployment's rule
 * (`TESSERA_GRAPH_PLACEMENT`, default hash tags `{key}rest`), never a separate field, so every read and every KHop
 * hop computes a vertex's partition from its id alone. A put (or an edge to) an id whose key is outside the grammar
 * fails `InvalidPlacementKey` and stores nothing.
 */

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

export class VertexNotFound extends Schema.TaggedError<VertexNotFound>()("VertexNotFound", {
  id: Schema.String
}) {}

export class InvalidVertexId extends Schema.TaggedError<InvalidVertexId>()("InvalidVertexId", {
  id: Schema.String,
  reason: Schema.String
}) {}

export class InvalidLabel extends Schema.TaggedError<InvalidLabel>()("InvalidLabel", {
  label: Schema.String,
  reason: Schema.String
}) {}

export class PropertiesTooLarge extends Schema.TaggedError<PropertiesTooLarge>()("PropertiesTooLarge", {
  id: Schema.String,
  bytes: Schema.Int,
  limit: Schema.Int
}) {}

/** The vertex id's placement key is outside the grammar (1-64 of A-Z a-z 0-9 . _ - : / @ + =). */
export class InvalidPlacementKey extends Schema.TaggedError<InvalidPlacementKey>()("InvalidPlacementKey", {
  id: Schema.String,
  key: Schema.String,
  reason: Schema.String
}) {}

/** `Graph.Rebalance` options out of range; nothing was moved. */
export class InvalidRebalance extends Schema.TaggedError<InvalidRebalance>()("InvalidRebalance", {
  reason: Schema.String
}) {}

/** The id does not hash to the partition it was sent to (a client with another partition count). */
export class WrongPartition extends Schema.TaggedError<WrongPartition>()("WrongPartition", {
  id: Schema.String,
  partition: Schema.Int,
  expected: Schema.Int,
  partitions: Schema.Int
}) {}

/** The entity id is not a partition number in `[0, partitions)`. */
export class InvalidPartition extends Schema.TaggedError<InvalidPartition>()("InvalidPartition", {
  entityId: Schema.String,
  partitions: Schema.Int
}) {}

export class TooManyIds extends Schema.TaggedError<TooManyIds>()("TooManyIds", {
  count: Schema.Int,
  limit: Schema.Int
}) {}

export class KHopTooDeep extends Schema.TaggedError<KHopTooDeep>()("KHopTooDeep", {
  k: Schema.Int,
  max: Schema.Int
}) {}

/** Valkey, SQL or the object store failed; the request may be retried. */
export class GraphStorageError extends Schema.TaggedError<GraphStorageError>()("GraphStorageError", {
  message: Schema.String
}) {}

const Common = [InvalidPartition, WrongPartition, InvalidVertexId, GraphStorageError] as const

// ---------------------------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------------------------

/**
 * Vertex ids and labels follow the contracts' grammar (no control characters, bounded): a payload outside it fails
 * decoding at the gateway. The partition's own rules (a label has no `|`, the id's partition) give typed errors.
 */
export const VertexId = Ids.text({ maxLength: MAX_VERTEX_ID_LENGTH })
export const Label = Ids.text({ maxLength: MAX_LABEL_LENGTH })
/**
 * A JSON object (see `isJsonObject`). Declared with one synchronous check instead of `Record(String, Json)`,
 * whose per-key effects and cycle-tracking walk cost more than the rest of a BatchGet; the JSON form is the
 * value itself.
 */
export type Properties = { readonly [key: string]: Schema.Json }
export const Properties = Schema.declare<Properties>(isJsonObject as (u: unknown) => u is Properties, {
  expected: "a JSON object",
  toCodecJson: () => undefined
})

/** Properties as a client writes them: also every top-level key is an `Ids.Key` (1-64 characters, no controls). */
export const PropertiesInput = Properties.check(
  Schema.makeFilter((properties) => {
    for (const key in properties) {
      const problem = Ids.problem(key, Ids.maxKeyLength)
      if (problem !== undefined) return { path: [key], issue: `property key ${problem}` }
    }
    return undefined
  })
)

export const Vertex = Schema.Struct({ id: Schema.String, properties: Properties })
export type Vertex = typeof Vertex.Type

export const Neighbor = Schema.Struct({ label: Schema.String, id: Schema.String })
export type Neighbor = typeof Neighbor.Type

export const Tier = Schema.Literals(["hot", "cold"])
export type Tier = typeof Tier.Type

export const PartitionInfo = Schema.Struct({
  partition: Schema.Int,
  tier: Tier,
  vertices: Schema.Int,
  version: Schema.Int,
  /** Cluster address of the runner identity hosting the partition (a runner's standby has its own port). */
  runner: Schema.String,
  /** Zone of that runner (`TESSERA_ZONE`), null when it has none. */
  zone: Schema.NullOr(Schema.String),
  /** The partition's preferred zone (`TESSERA_GRAPH_ZONES`), null for no preference. */
  preferredZone: Schema.NullOr(Schema.String)
})
export type PartitionInfo = typeof PartitionInfo.Type

// ---------------------------------------------------------------------------------------------------------------
// Partition entity
// ---------------------------------------------------------------------------------------------------------------

/** Creates or replaces a vertex's properties; `created` is false when it replaced one. */
export const PutVertex = Rpc.make("PutVertex", {
  payload: { id: VertexId, properties: PropertiesInput },
  success: Schema.Struct({ created: Schema.Boolean }),
  error: Schema.Union([...Common, PropertiesTooLarge, InvalidPlacementKey])
})

export const GetVertex = Rpc.make("GetVertex", {
  payload: { id: VertexId },
  success: Vertex,
  error: Schema.Union([...Common, VertexNotFound])
})

/** Several ids of this partition; `null` for unknown ids, in input order. */
export const GetMany = Rpc.make("GetMany", {
  payload: { ids: Schema.Array(VertexId) },
  success: Schema.Array(Schema.NullOr(Properties)),
  error: Schema.Union([...Common, TooManyIds])
})

/** Deletes a vertex and its out-edges (in-edges from other vertices are left; Neighbors may name it). */
export const DeleteVertex = Rpc.make("DeleteVertex", {
  payload: { id: VertexId },
  success: Schema.Struct({ deleted: Schema.Boolean }),
  error: Schema.Union([...Common, VertexNotFound])
})

/** A directed, labelled edge `src -label-> dst`, stored with `src` (whose partition this is). */
export const AddEdge = Rpc.make("AddEdge", {
  payload: { src: VertexId, label: Label, dst: VertexId },
  success: Schema.Struct({ added: Schema.Boolean }),
  error: Schema.Union([...Common, InvalidLabel, VertexNotFound, InvalidPlacementKey])
})

export const RemoveEdge = Rpc.make("RemoveEdge", {
  payload: { src: VertexId, label: Label, dst: VertexId },
  success: Schema.Struct({ removed: Schema.Boolean }),
  error: Schema.Union([...Common, InvalidLabel])
})

/** Out-neighbours of a vertex (1 hop), optionally only one label. */
export const Neighbors = Rpc.make("Neighbors", {
  payload: { id: VertexId, label: Schema.optional(Label) },
  success: Schema.Array(Neighbor),
  error: Schema.Union([...Common, InvalidLabel, VertexNotFound])
})

/** Out-neighbour ids of several vertices of this partition (unknown ids have none), for KHop. */
export const NeighborsMany = Rpc.make("NeighborsMany", {
  payload: { ids: Schema.Array(VertexId), label: Schema.optional(Label) },
  success: Schema.Array(Schema.Array(Schema.String)),
  error: Schema.Union([...Common, InvalidLabel, TooManyIds])
})

/** Snapshots the partition to the cold tier and evicts it from Valkey; the next request promotes it. */
export const Demote = Rpc.make("Demote", {
  success: Schema.Struct({ version: Schema.Int, vertices: Schema.Int, millis: Schema.Number }),
  error: Schema.Union([InvalidPartition, GraphStorageError])
})

/** Tier, size and host of the partition (promotes a cold partition, like any request). */
export const Info = Rpc.make("Info", {
  success: PartitionInfo,
  error: Schema.Union([InvalidPartition, GraphStorageError])
})

/**
 * Rebalance, sent to a vertex's home partition (`vertexPartition`): moves the vertex online to partition `to`
 * (back home when `to` is the home). Copy to `to`, switch the home's forward (fenced metadata row, then the Valkey
 * marker), delete the old copy; the vertex's writes wait meanwhile and reads find one complete copy throughout.
 */
export const Move = Rpc.make("Move", {
  payload: { id: VertexId, to: Schema.Int },
  success: Schema.Struct({ moved: Schema.Boolean, from: Schema.Int, to: Schema.Int }),
  error: Schema.Union([...Common, VertexNotFound])
})

/** Rebalance, internal: the home of `id` gives this partition a copy to hold (replacing any earlier one). */
export const Adopt = Rpc.make("Adopt", {
  payload: { id: VertexId, properties: Properties, edges: Schema.Array(Neighbor) },
  success: Schema.Struct({ adopted: Schema.Boolean }),
  error: Schema.Union(Common)
})

/** Rebalance, internal: the home of `id` moved it elsewhere; this partition drops its copy. */
export const Release = Rpc.make("Release", {
  payload: { id: VertexId },
  success: Schema.Struct({ released: Schema.Boolean }),
  error: Schema.Union(Common)
})

/** Rebalance input: every vertex this partition holds (its own and guests) with its out-neighbour ids. */
export const Edges = Rpc.make("Edges", {
  success: Schema.Array(Schema.Tuple([Schema.String, Schema.Array(Schema.String)])),
  error: Schema.Union([InvalidPartition, GraphStorageError])
})

export const ProxyPartition = Entity.make("ProxyPartition", [
  PutVertex,
  GetVertex,
  GetMany,
  DeleteVertex,
  AddEdge,
  RemoveEdge,
  Neighbors,
  NeighborsMany,
  Demote,
  Info,
  Move,
  Adopt,
  Release,
  Edges
])

// ---------------------------------------------------------------------------------------------------------------
// Gateway-level RPCs
// ---------------------------------------------------------------------------------------------------------------

/**
 * Many ids of any partitions, answered in input order: read directly from Valkey in one MGET; ids not found there
 * (cold partitions, unknown ids) are asked of their partitions' entities, which promote cold partitions.
 */
export const BatchGet = Rpc.make("Graph.BatchGet", {
  payload: { ids: Schema.Array(VertexId) },
  success: Schema.Array(Schema.NullOr(Properties)),
  error: Schema.Union([InvalidVertexId, TooManyIds, GraphStorageError, WrongPartition, InvalidPartition, InvalidLabel])
})

/**
 * Out-neighbours of a vertex (1 hop), served by the gateway: read directly from the hot tier while the vertex is
 * there, otherwise by the partition entity (which promotes a cold partition).
 */
export const GraphNeighbors = Rpc.make("Graph.Neighbors", {
  payload: { id: VertexId, label: Schema.optional(Label) },
  success: Schema.Array(Neighbor),
  error: Schema.Union([
    InvalidVertexId,
    InvalidLabel,
    VertexNotFound,
    GraphStorageError,
    WrongPartition,
    InvalidPartition,
    TooManyIds
  ])
})

/**
 * Vertices reachable in 1..k hops along out-edges (optionally one label), breadth first, at most `limit`
 * (default 1000, at most 10000). `truncated` when the limit cut the search short.
 */
export const KHop = Rpc.make("Graph.KHop", {
  payload: {
    id: VertexId,
    k: Schema.Int,
    label: Schema.optional(Label),
    limit: Schema.optional(Schema.Int)
  },
  success: Schema.Struct({ vertices: Schema.Array(Schema.String), truncated: Schema.Boolean }),
  error: Schema.Union([
    KHopTooDeep,
    InvalidVertexId,
    InvalidLabel,
    VertexNotFound,
    TooManyIds,
    GraphStorageError,
    WrongPartition,
    InvalidPartition
  ])
})

export const PartitionMeta = Schema.Struct({
  partition: Schema.Int,
  tier: Tier,
  location: Schema.NullOr(Schema.String),
  version: Schema.Int,
  lastAccess: Schema.Number,
  temperature: Schema.Number,
  /** Preferred zone, null for no preference. */
  zone: Schema.NullOr(Schema.String),
  /** Requests and direct reads served by runners in the preferred zone / in another zone (cumulative). */
  sameZone: Schema.Number,
  crossZone: Schema.Number
})
export type PartitionMeta = typeof PartitionMeta.Type

/**
 * Partition metadata from `graph_partitions` (partitions never touched have no row), with the cluster's zone traffic:
 * requests (entity RPCs, gateway direct reads) served inside and outside the partitions' preferred zones, as the
 * partitions last reported them (every `min(5 s, TESSERA_GRAPH_IDLE / 2)`).
 */
export const Stats = Rpc.make("Graph.Stats", {
  success: Schema.Struct({
    partitions: Schema.Int,
    hot: Schema.Int,
    cold: Schema.Int,
    /** `TESSERA_GRAPH_ZONES` of the answering runner. */
    zones: Schema.Array(Schema.String),
    sameZone: Schema.Number,
    crossZone: Schema.Number,
    rows: Schema.Array(PartitionMeta)
  }),
  error: GraphStorageError
})

/**
 * Computes communities from the stored edges (label propagation, `labelPropagation` in `core.ts`: `iterations` at
 * most, default 20, 1 to 100; visiting order and ties drawn from a PRNG seeded by `seed`, default 1) and moves
 * every vertex without a placement
 * key to its community's partition: the partition holding most of the community's keyed vertices, else most of its
 * members (ties: the lower partition). Online: reads and writes go on. `dryRun` computes and moves nothing. Vertices
 * written meanwhile stay where they are placed until the next run.
 */
export const Rebalance = Rpc.make("Graph.Rebalance", {
  payload: {
    iterations: Schema.optional(Schema.Int),
    seed: Schema.optional(Schema.Int),
    dryRun: Schema.optional(Schema.Boolean)
  },
  success: Schema.Struct({
    vertices: Schema.Int,
    edges: Schema.Int,
    communities: Schema.Int,
    iterations: Schema.Int,
    converged: Schema.Boolean,
    /** Edges whose ends live in one partition, before and after (after: as planned when `dryRun`). */
    localEdgesBefore: Schema.Int,
    localEdgesAfter: Schema.Int,
    moved: Schema.Int,
    /** Planned moves that found the vertex gone (deleted meanwhile). */
    skipped: Schema.Int
  }),
  error: Schema.Union([InvalidRebalance, TooManyIds, GraphStorageError])
})

export const GatewayEntry = Schema.Struct({
  /** Base URL clients reach the gateway at (`TESSERA_GATEWAY_URL`). */
  url: Schema.String,
  /** Its zone (`TESSERA_ZONE`), null when it has none. */
  zone: Schema.NullOr(Schema.String),
  /** Whether it reads from a fresh Valkey replica in its own zone now. */
  replica: Schema.Boolean
})

/**
 * The routing table for zone-local serving (`routing.ts`): the zone of each partition's data and owner (null: no
 * preference), the gateways alive now with their zones, and how often a client should fetch it again. A client sends
 * a request to a gateway of the zone holding its vertices, any gateway when it knows none there.
 */
export const Routing = Rpc.make("Graph.Routing", {
  success: Schema.Struct({
    partitions: Schema.Int,
    zones: Schema.Array(Schema.NullOr(Schema.String)),
    gateways: Schema.Array(GatewayEntry),
    refreshMillis: Schema.Int
  }),
  error: GraphStorageError
})

export const GraphRpcs = RpcGroup.make(BatchGet, GraphNeighbors, KHop, Stats, Rebalance, Routing)

/** The graph module's wire contract: the `ProxyPartition` entity and the `Graph.*` gateway RPCs. */
export const GraphContract = Contract.make({ name: "graph", entities: [ProxyPartition], rpcs: GraphRpcs })
