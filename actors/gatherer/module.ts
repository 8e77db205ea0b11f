/**
 * The gatherer module: redundant venue collectors (`Gatherer`, id `replica/connection`) and the deduplicators
 * that merge them (`Deduplicator`, id `d<k>`), the fleet supervisor, the `Gather.*` gateway RPCs, zone placement of
 * replicas (`TESSERA_GATHER_ZONES`), the `orderbook_deltas` table and the `tessera gather` command.
 */
import { type MarketData, Module } from "@tessera/contracts"
import * as Metrics from "@tessera/platform/Metrics"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { gatherCommand, gatherUsage } from "./cli.ts"
import * as Config from "./config.ts"
import { GathererLayer, layer, layerGathererProxyRpcs, layerGatherRpcs, metrics } from "./entity.ts"
import { bookStream, GatherContract, gathererZoneGroup, parseGathererId } from "./protocol.ts"
import { retention, retentionMigrations } from "./retention.ts"
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

/** Market names as venues send them; a market is known once `orderbook_deltas` holds a row of it. */
const marketPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/

const marketData = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const known = new Set<string>()
  const check = (market: string): Effect.Effect<string | undefined> => {
    if (known.has(market)) return Effect.succeed(undefined)
    if (!marketPattern.test(market)) return Effect.succeed("a market is 1-64 letters, digits or . _ : -")
    return sql<{ one: number }>`SELECT 1 AS one FROM orderbook_deltas WHERE market = ${market} LIMIT 1`.pipe(
      Effect.map((rows) => {
        if (rows.length === 0) return `no deltas of market ${market} were ever written`
        known.add(market)
        return undefined
      }),
      // Storage trouble is not the client's fault: the subscription reads the stream either way.
      Effect.orElseSucceed(() => undefined)
    )
  }
  const source: MarketData.Source = {
    field: "markets",
    check,
    streams: (market) => [{ key: bookStream(market), kind: "book" }]
  }
  return [source]
})

export const GatherModule = Module.make({
  contract: GatherContract,
  layer,
  // Gatherer proxy RPCs addressed by zone shard group when TESSERA_GATHER_ZONES is set.
  handlers: Layer.mergeAll(layerGatherRpcs, layerGathererProxyRpcs),
  config: Config.layerFromEnv,
  variables: Config.variables,
  migrations: { table: "gatherer_migrations", migrations: { ...migrations, ...retentionMigrations } },
  retention,
  entityIds,
  zoneGroups: Effect.map(Config.GatherConfig, (config) =>
    config.gatherZones.map((zone) => ({ group: gathererZoneGroup(zone), zone }))
  ),
  // Only gatherers are zoned; deduplicators and the supervisor stay in `default`, which a standby never serves.
  standby: GathererLayer,
  marketData,
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
