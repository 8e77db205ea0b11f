/**
 * NodeStatus: what this runner holds, and the cluster as the runners report it.
 *
 * Each runner writes one row to `tessera_runners` every second (shards held, active entities, zone); the
 * status RPC and `/ready` read from here. A row not refreshed for `staleAfterMs` marks its runner unhealthy;
 * a clean shutdown deletes the row.
 */

import { Control, type Module } from "@tessera/contracts"
import { Context, Effect, Layer, Option, Schedule } from "effect"
import { ShardId, Sharding } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { TesseraConfig } from "./config.ts"

export type NodeMode = "single" | "runner"

export class NodeStatus extends Context.Service<
  NodeStatus,
  {
    /** This runner's cluster address. */
    readonly self: string
    readonly mode: NodeMode
    /** Shards this runner holds now. */
    readonly shardsHeld: Effect.Effect<number>
    /** True once this runner holds shards (or is the only node). */
    readonly ready: Effect.Effect<boolean>
    /** The cluster as its runners last reported it. */
    readonly cluster: Effect.Effect<Control.ClusterStatus, Control.StatusUnavailable>
  }
>()("tessera/runtime/NodeStatus") {}

const reportIntervalMs = 1000
const staleAfterMs = 3000
const forgetAfterMs = 60_000

const migrate = (sql: SqlClient.SqlClient) =>
  sql`CREATE TABLE IF NOT EXISTS tessera_runners (
    address TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    shards INTEGER NOT NULL,
    entities INTEGER NOT NULL,
    zone TEXT,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
  )`

interface RunnerRow {
  readonly address: string
  readonly shards: number | string
  readonly entities: number | string
  readonly zone: string | null
  readonly started_at: number | string
  readonly seen_at: number | string
}

export const layer = (
  mode: NodeMode,
  modules: ReadonlyArray<Module.Any> = []
): Layer.Layer<NodeStatus, never, Sharding.Sharding | SqlClient.SqlClient | TesseraConfig> =>
  Layer.effect(NodeStatus)(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const sharding = yield* Sharding.Sharding
      const sql = yield* SqlClient.SqlClient
      const self = mode === "single" ? `embedded:${config.runnerPort}` : `${config.runnerHost}:${config.runnerPort}`
      const zone = Option.getOrNull(config.zone)
      const startedAt = Date.now()
      const hosted: Array<Control.ModuleStatus> = modules.map((module) => ({
        name: module.name,
        entityTypes: module.contract.entities.map((entity) => entity.type),
        rpcs: [...module.contract.rpcs.requests.keys()]
      }))
      const allShards = Array.from({ length: config.shardsPerGroup }, (_, i) => ShardId.make("default", i + 1))

      const shardsHeld = Effect.sync(() => {
        let held = 0
        for (const shard of allShards) if (sharding.hasShardId(shard)) held++
        return held
      })

      yield* migrate(sql).pipe(Effect.orDie)

      const report = Effect.gen(function* () {
        const shards = yield* shardsHeld
        const entities = yield* sharding.activeEntityCount
        const now = Date.now()
        yield* sql`INSERT INTO tessera_runners (address, mode, shards, entities, zone, started_at, seen_at)
          VALUES (${self}, ${mode}, ${shards}, ${entities}, ${zone}, ${startedAt}, ${now})
          ON CONFLICT (address) DO UPDATE SET mode = excluded.mode, shards = excluded.shards,
            entities = excluded.entities, zone = excluded.zone, started_at = excluded.started_at,
            seen_at = excluded.seen_at`
      }).pipe(
        Effect.catchCause((cause) => Effect.logWarning("runner status report failed", cause)),
        Effect.ignore
      )
      yield* report
      yield* Effect.forkScoped(Effect.repeat(report, Schedule.spaced(reportIntervalMs)))
      yield* Effect.addFinalizer(() => sql`DELETE FROM tessera_runners WHERE address = ${self}`.pipe(Effect.ignore))

      const cluster = Effect.gen(function* () {
        const now = Date.now()
        // Report this runner fresh, then read everyone's rows.
        yield* report
        const rows = yield* sql<RunnerRow>`SELECT address, shards, entities, zone, started_at, seen_at
          FROM tessera_runners WHERE seen_at > ${now - forgetAfterMs} ORDER BY address`
        const runners: Array<Control.RunnerStatus> = rows.map((row) => ({
          address: row.address,
          healthy: now - Number(row.seen_at) <= staleAfterMs,
          shards: Number(row.shards),
          entities: Number(row.entities),
          zone: row.zone,
          startedAt: Number(row.started_at),
          seenAt: Number(row.seen_at)
        }))
        return {
          self,
          mode,
          shardsPerGroup: config.shardsPerGroup,
          runners,
          modules: hosted
        } satisfies Control.ClusterStatus
      }).pipe(
        Effect.mapError(
          (error) => new Control.StatusUnavailable({ message: `cluster status unavailable: ${error.message}` })
        )
      )

      return NodeStatus.of({
        self,
        mode,
        shardsHeld,
        ready: mode === "single" ? Effect.succeed(true) : Effect.map(shardsHeld, (n) => n > 0),
        cluster
      })
    })
  )
