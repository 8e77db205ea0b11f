/**
 * The graph module: vertex data hashed to partitions (`ProxyPartition`, id = partition number), a Valkey hot tier,
 * an object-store cold tier and `graph_partitions` metadata; the `Graph.*` gateway RPCs, zone placement
 * (`TESSERA_GRAPH_ZONES`) and the `tessera graph` command.
 */
import { Module } from "@tessera/contracts"
import * as Metrics from "@tessera/platform/Metrics"
import { Effect, Layer } from "effect"
import { graphCommand, graphCommandUsage } from "./cli.ts"
import * as Config from "./config.ts"
import { zoneShardGroup } from "./core.ts"
import { layer, layerGraphRpcs, layerProxyRpcHandlers } from "./entity.ts"
import * as GraphMetrics from "./metrics.ts"
import { migrations, migrationsTable } from "./Partition.ts"
import { GraphContract } from "./protocol.ts"

const counterTotal = (counter: typeof GraphMetrics.sameZone) => {
  let total = 0
  for (const [, series] of counter.series()) total += series.value
  return total
}

export const GraphModule = Module.make({
  contract: GraphContract,
  layer,
  // Proxy RPCs addressed by zone shard group when TESSERA_GRAPH_ZONES is set.
  handlers: Layer.mergeAll(layerProxyRpcHandlers, layerGraphRpcs),
  config: Config.layerFromEnv,
  variables: Config.variables,
  migrations: { table: migrationsTable, migrations },
  entityIds: Effect.map(Config.GraphConfig, (config) => ({
    ProxyPartition: (id: string) =>
      Effect.succeed(
        /^(0|[1-9]\d{0,5})$/.test(id) && Number(id) < config.graphPartitions
          ? undefined
          : `a graph partition id is 0 to ${config.graphPartitions - 1}`
      )
  })),
  zoneGroups: Effect.map(Config.GraphConfig, (config) =>
    config.graphZones.map((zone) => ({ group: zoneShardGroup(zone), zone }))
  ),
  standby: layer,
  // Demoting a partition to the cold tier is an operator's action; so is a rebalance and each of its steps.
  access: {
    "ProxyPartition.Demote": "admin",
    "ProxyPartition.Move": "admin",
    "ProxyPartition.Adopt": "admin",
    "ProxyPartition.Release": "admin",
    "ProxyPartition.Edges": "admin",
    "Graph.Rebalance": "admin"
  },
  metrics: Metrics.familyNames(GraphMetrics),
  statusTiles: [
    {
      label: "Graph traffic across zones",
      title:
        "graph requests served by this runner outside the partition's preferred zone (TESSERA_GRAPH_ZONES), since start",
      read: () => {
        const same = counterTotal(GraphMetrics.sameZone)
        const cross = counterTotal(GraphMetrics.crossZone)
        const zoned = same + cross
        return zoned === 0 ? "–" : `${((100 * cross) / zoned).toFixed(1)}% of ${zoned}`
      }
    }
  ],
  cli: [
    {
      name: "graph",
      summary: "graph proxy: put, get, delete, edge, neighbors, khop, stats, demote, info, rebalance (JSON)",
      usage: graphCommandUsage,
      run: graphCommand
    }
  ]
})
