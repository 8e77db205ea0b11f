/**
 * Gatherers and deduplicators (DESIGN §3.2). `Gatherer` (id `replica/connection`) holds one venue connection
 * with a slice of the markets and forwards every copy it receives, batched per deduplicator. `Deduplicator`
 * (id `d<k>`, each market hashed to one k) keeps the first copy of each `(market, seq)`, heals gaps from venue
 * snapshots and writes `orderbook_deltas` plus the Valkey stream `md:book:{market}`.
 */
import { Contract, Ids } from "@tessera/contracts"
import { Schema } from "effect"
import { Entity } from "effect/cluster"
import { Rpc, RpcGroup } from "effect/rpc"

/** A market name as the venue lists it: 1-256 characters, no control characters (`Ids.Id`; written to Postgres). */
const Market = Ids.Id

/** A batch of delta copies as parallel arrays (one message per deduplicator per flush, not per delta). */
export const DeltaBatch = Schema.Struct({
  market: Schema.Array(Market),
  seq: Schema.Array(Schema.Number),
  ts: Schema.Array(Schema.Number),
  side: Schema.Array(Schema.Number),
  price: Schema.Array(Schema.Number),
  qty: Schema.Array(Schema.Number)
})
export type DeltaBatch = typeof DeltaBatch.Type

export const GathererStatus = Schema.Struct({
  id: Schema.String,
  runner: Schema.String,
  connected: Schema.Boolean,
  markets: Schema.Int,
  received: Schema.Number,
  forwarded: Schema.Number,
  garbage: Schema.Number,
  /** Frames with garbage in them, and frames refused for their size (the connection is closed and reopened). */
  garbageFrames: Schema.Number,
  oversizeFrames: Schema.Number,
  /** Venue sequence-reset markers received. */
  resets: Schema.Number,
  reconnects: Schema.Number,
  sendFailures: Schema.Number,
  msgsPerSec: Schema.Number
})
export type GathererStatus = typeof GathererStatus.Type

/** A market whose hole snapshots could not heal after several tries: flagged, and still retried with backoff. */
export const UnhealedMarket = Schema.Struct({
  market: Schema.String,
  /** Failed snapshot attempts in a row. */
  failures: Schema.Int,
  /** When the first of them failed (ms since the epoch). */
  sinceMs: Schema.Number,
  /** The last failure, venue data escaped and truncated. */
  lastError: Schema.String
})
export type UnhealedMarket = typeof UnhealedMarket.Type

export const DeduplicatorStatus = Schema.Struct({
  id: Schema.String,
  runner: Schema.String,
  markets: Schema.Int,
  copies: Schema.Number,
  accepted: Schema.Number,
  written: Schema.Number,
  duplicates: Schema.Number,
  overflow: Schema.Number,
  gaps: Schema.Number,
  snapshots: Schema.Number,
  healed: Schema.Number,
  skipped: Schema.Number,
  openHoles: Schema.Int,
  pendingWrites: Schema.Int,
  writeFailures: Schema.Number,
  lagP50Ms: Schema.Number,
  lagP99Ms: Schema.Number,
  /** Snapshot requests that failed (timeout, HTTP error, oversize, invalid, network). */
  snapshotFailures: Schema.Number,
  /** Markets flagged as not healed (at most 100 listed; `unhealedCount` has them all). */
  unhealed: Schema.Array(UnhealedMarket),
  unhealedCount: Schema.Int
})
export type DeduplicatorStatus = typeof DeduplicatorStatus.Type

/** A gatherer addressed in another shard group than its replica's zone's: TESSERA_GATHER_ZONES differs between nodes. */
export class GathererMisplaced extends Schema.TaggedError<GathererMisplaced>()("GathererMisplaced", {
  message: Schema.String
}) {}

/** Activates the gatherer (starting its connection) and renews its lease; the supervisor sends it periodically. */
export const Ensure = Rpc.make("Ensure", { success: GathererStatus, error: GathererMisplaced })
export const GatherStatus = Rpc.make("Status", { success: GathererStatus, error: GathererMisplaced })

export const Gatherer = Entity.make("Gatherer", [Ensure, GatherStatus])

export const Ingest = Rpc.make("Ingest", {
  payload: { batch: DeltaBatch },
  success: Schema.Struct({ accepted: Schema.Int, duplicates: Schema.Int })
})
export const DedupStatus = Rpc.make("Status", { success: DeduplicatorStatus })

export const Deduplicator = Entity.make("Deduplicator", [Ingest, DedupStatus])

/** Which deduplicator owns `market` (FNV-1a over the name). Every node must use the same `shards`. */
export const dedupShardOf = (market: string, shards: number): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < market.length; i++) {
    h ^= market.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % shards
}

export const dedupEntityId = (shard: number): string => `d${shard}`

export const gathererEntityId = (replica: number, connection: number): string => `${replica}/${connection}`

export const parseGathererId = (id: string): { replica: number; connection: number } | undefined => {
  const match = /^(\d+)\/(\d+)$/.exec(id)
  return match === null ? undefined : { replica: Number(match[1]), connection: Number(match[2]) }
}

/** The shard group of a gatherer zone (`TESSERA_GATHER_ZONES`). */
export const gathererZoneGroup = (zone: string): string => `gatherer-${zone}`

/**
 * Shard group of the `Gatherer` with this id: replica r lives in the group of `zones[r mod n]`, so the replicas of
 * one connection prefer different zones. No zones, or an id that is not `replica/connection`: `default`.
 */
export const gathererShardGroup = (entityId: string, zones: ReadonlyArray<string>): string => {
  if (zones.length === 0) return "default"
  const parsed = parseGathererId(entityId)
  return parsed === undefined ? "default" : gathererZoneGroup(zones[parsed.replica % zones.length])
}

/** The Valkey stream a market's deltas are published to. */
export const bookStream = (market: string): string => `md:book:${market}`

/** The fleet as seen from one gateway: every gatherer and deduplicator that answered in time. */
export const FleetStatus = Schema.Struct({
  venueUrl: Schema.NullOr(Schema.String),
  replicas: Schema.Int,
  connections: Schema.Int,
  /** Zones the replicas are spread over (`TESSERA_GATHER_ZONES`): replica r in `zones[r mod n]`; empty: none. */
  zones: Schema.Array(Schema.String),
  dedupShards: Schema.Int,
  gatherers: Schema.Array(GathererStatus),
  deduplicators: Schema.Array(DeduplicatorStatus),
  /** Entity ids that did not answer within the timeout. */
  unreachable: Schema.Array(Schema.String)
})
export type FleetStatus = typeof FleetStatus.Type

export const GatherFleetStatus = Rpc.make("Gather.Status", { success: FleetStatus })

/** Gateway-level RPCs that fan out over the fleet. */
export const GatherSetReplicas = Rpc.make("Gather.SetReplicas", {
  payload: { replicas: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 64 })) },
  success: Schema.Struct({ replicas: Schema.Int })
})

export const GatherRpcs = RpcGroup.make(GatherFleetStatus, GatherSetReplicas)

/** The gatherer module's wire contract: both entities and the `Gather.*` gateway RPCs. */
export const GatherContract = Contract.make({ name: "gatherer", entities: [Gatherer, Deduplicator], rpcs: GatherRpcs })
