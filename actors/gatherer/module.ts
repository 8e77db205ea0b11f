/**
 * The gatherer module: redundant venue collectors (`Gatherer`, id `replica/connection`) and the deduplicators
 * that merge them (`Deduplicator`, id `d<k>`), the fleet supervisor, the `Gather.*` gateway RPCs, the
 * `orderbook_deltas` table and the `tessera gather` command.
 */
import { Module } from "@tessera/contracts"
import * as Metrics from "@tessera/platform/Metrics"
import { Effect } from "effect"
import { gatherCommand, gatherUsage } from "./cli.ts"
import * as Config from "./config.ts"
import { layer, layerGatherRpcs, metrics } from "./entity.ts"
import { GatherContract, parseGathererId } from "./protocol.ts"
import { migrations } from "./store.ts"

const entityIds = Effect.map(Config.GatherConfig, (config) => ({
  Gatherer: (id: string) => {
    const parsed = parseGathererId(id)
    return Effect.succeed(
      parsed === undefined || parsed.replica > 64 || parsed.connection >= config.gatherConnections
        ? `a gatherer id is replica/connection, replica 0-64 and connection below ${config.gatherConnections}`
        : undefined
    )
  },
  Deduplicator: (id: string) => {
    const match = /^d(\d{1,6})$/.exec(id)
    return Effect.succeed(
      match === null || Number(match[1]) >= config.dedupShards
        ? `a deduplicator id is d0 to d${config.dedupShards - 1}`
        : undefined
    )
  }
}))

export const GatherModule = Module.make({
  contract: GatherContract,
  layer,
  handlers: layerGatherRpcs,
  config: Config.layerFromEnv,
  variables: Config.variables,
  migrations: { table: "gatherer_migrations", migrations },
  entityIds,
  // Changing the fleet and writing deltas are operator and runner work, not a client's.
  access: { "Gather.SetReplicas": "admin", "Gatherer.Ensure": "admin", "Deduplicator.Ingest": "admin" },
  metrics: Metrics.familyNames(metrics),
  cli: [
    {
      name: "gather",
      summary: "market-data gatherers and deduplicators: status (msgs/s, duplicates, gaps, lag) or replicas N",
      usage: gatherUsage,
      run: gatherCommand
    }
  ]
})
