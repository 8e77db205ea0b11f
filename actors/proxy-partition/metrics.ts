/**
 * The graph proxy's Prometheus series (served at `/metrics` by every runner's gateway): requests by operation,
 * hot-tier hits and misses, promotions and demotions with their durations, and each active partition's
 * temperature and tier.
 *
 * Hits and misses are counted on two paths: `gateway` counts vertex ids the gateway read straight from the hot
 * tier (hit) or had to ask the owning partition for (miss: partition cold, being demoted, or id absent);
 * `entity` counts requests a partition served while hot (hit) or after promoting itself (miss).
 */
import * as Metrics from "@tessera/platform/Metrics"

export const requests = Metrics.counter(
  "tessera_graph_requests_total",
  "Graph requests by operation (partition entity RPCs and gateway fan-out RPCs)",
  ["op"]
)
export const hits = Metrics.counter("tessera_graph_hot_hits_total", "Reads answered by the hot tier", ["path"])
export const misses = Metrics.counter("tessera_graph_hot_misses_total", "Reads the hot tier could not answer", ["path"])
export const promotions = Metrics.counter("tessera_graph_promotions_total", "Partitions promoted from cold to hot")
export const demotions = Metrics.counter("tessera_graph_demotions_total", "Partitions demoted from hot to cold")
export const promotionSeconds = Metrics.histogram(
  "tessera_graph_promotion_seconds",
  "Time to promote a partition (snapshot fetched from the cold tier and restored into Valkey)"
)
export const demotionSeconds = Metrics.histogram(
  "tessera_graph_demotion_seconds",
  "Time to demote a partition (snapshot written to the cold tier, keys evicted)"
)
export const temperature = Metrics.gauge(
  "tessera_graph_partition_temperature",
  "Decayed request rate of an active partition (requests/s, at its last report)",
  ["partition"]
)
export const checkpoints = Metrics.counter(
  "tessera_graph_checkpoints_total",
  "Periodic snapshots of hot partitions that changed (TESSERA_GRAPH_SNAPSHOT_INTERVAL), bounding what a Valkey loss loses"
)
export const checkpointSeconds = Metrics.histogram(
  "tessera_graph_checkpoint_seconds",
  "Time to snapshot a hot partition to the cold tier and swap its pointer (keys stay in Valkey)"
)
export const wipeRestores = Metrics.counter(
  "tessera_graph_wipe_restores_total",
  "Hot partitions found missing from Valkey (its live marker gone) and restored from their last snapshot"
)
export const staleOwnerWrites = Metrics.counter(
  "tessera_graph_stale_owner_writes_total",
  "Partition metadata writes refused because the partition's owner epoch was stale (another activation claimed it)",
  ["partition"]
)
export const partitionHot = Metrics.gauge(
  "tessera_graph_partition_hot",
  "1 while an active partition is in the hot tier, 0 when cold",
  ["partition"]
)

/**
 * Zone accounting (with `TESSERA_GRAPH_ZONES`): graph traffic this runner served for partitions whose preferred zone
 * is (same) or is not (cross) this runner's `TESSERA_ZONE`. `path="entity"` counts partition requests served by an
 * entity here; `path="gateway"` counts vertices this gateway read straight from the hot tier. Partitions without a
 * preferred zone are not counted.
 */
export const sameZone = Metrics.counter(
  "tessera_graph_same_zone_requests_total",
  "Graph requests served by a runner in the partition's preferred zone",
  ["path"]
)
export const crossZone = Metrics.counter(
  "tessera_graph_cross_zone_requests_total",
  "Graph requests served by a runner outside the partition's preferred zone",
  ["path"]
)

export const gatewayHits = hits.labels({ path: "gateway" })
export const gatewayMisses = misses.labels({ path: "gateway" })
export const entityHits = hits.labels({ path: "entity" })
export const entityMisses = misses.labels({ path: "entity" })
export const entitySameZone = sameZone.labels({ path: "entity" })
export const entityCrossZone = crossZone.labels({ path: "entity" })
export const gatewaySameZone = sameZone.labels({ path: "gateway" })
export const gatewayCrossZone = crossZone.labels({ path: "gateway" })
export const moves = Metrics.counter(
  "tessera_graph_vertex_moves_total",
  "Vertices moved to another partition by a rebalance (counted by their home partition)"
)
