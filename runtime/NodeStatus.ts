/**
 * NodeStatus: what this runner holds, and the cluster as the runners report it.
 *
 * Each runner writes one row to `tessera_runners` every second (shards held, active entities, zone); the
 * status RPC and `/ready` read from here. A row not refreshed for `staleAfterMs` marks its runner unhealthy;
 * a clean shutdown deletes the row. That write is also this runner's storage probe: bounded by a deadline well
 * under the shard-lock expiry, its last outcome decides whether `/ready` may answer 200.
 */

import { Control, type Module } from "@tessera/contracts"
import { Context, Duration, Effect, Fiber, Layer, Option, Ref, Schedule } from "effect"
import { ShardId, Sharding } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { TesseraConfig } from "./config.ts"
import { Drain } from "./drain.ts"

export type NodeMode = "single" | "runner"

/** Why `/ready` answers as it does: 200 only when `ready`. */
export type Readiness = "ready" | "starting" | "storage unreachable" | "draining"

export class NodeStatus extends Context.Service<
  NodeStatus,
  {
    /** This runner's cluster address. */
    readonly self: string
    readonly mode: NodeMode
    /** Shards this runner holds now. */
    readonly shardsHeld: Effect.Effect<number>
    /**
     * True once this runner holds shards (or is the only node) and its last storage probe, less than
     * `staleAfterMs` ago, succeeded.
     */
    readonly ready: Effect.Effect<boolean>
    /** `ready`, with the reason when it is false. */
    readonly readiness: Effect.Effect<Readiness>
    /** The cluster as its runners last reported it. */
    readonly cluster: Effect.Effect<Control.ClusterStatus, Control.StatusUnavailable>
  }
>()("tessera/runtime/NodeStatus") {}

const reportIntervalMs = 1000
const staleAfterMs = 3000
const forgetAfterMs = 60_000
/** Upper bound of the storage probe's deadline; it is also kept under a third of the shard-lock expiry. */
const maxProbeTimeoutMs = 2000

interface Probe {
  readonly ok: boolean
  /** When the probe last finished (`Date.now()`). */
  readonly at: number
}

/** The runners' status table (created by a node at startup, or by `tessera-migrate` when it runs no DDL). */
export const migrate = (sql: SqlClient.SqlClient) =>
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
): Layer.Layer<NodeStatus, never, Sharding.Sharding | SqlClient.SqlClient | TesseraConfig | Drain> =>
  Layer.effect(NodeStatus)(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const sharding = yield* Sharding.Sharding
      const sql = yield* SqlClient.SqlClient
      const drain = yield* Drain
      const self = mode === "single" ? `embedded:${config.runnerPort}` : `${config.runnerHost}:${config.runnerPort}`
      const zone = Option.getOrNull(config.zone)
      const startedAt = Date.now()
      const hosted: Array<Control.ModuleStatus> = modules.map((module) => ({
        name: module.name,
        entityTypes: module.contract.entities.map((entity) => entity.type),
        rpcs: [...module.contract.rpcs.requests.keys()]
      }))
      const allShards = Array.from({ length: config.shardsPerGroup }, (_, i) => ShardId.make("default", i + 1))
      const layerScope = yield* Effect.scope
      const probeTimeoutMs = Math.min(maxProbeTimeoutMs, Duration.toMillis(config.shardLockExpiration) / 3)
      const probe = yield* Ref.make<Probe>({ ok: false, at: 0 })

      const shardsHeld = Effect.sync(() => {
        let held = 0
        for (const shard of allShards) if (sharding.hasShardId(shard)) held++
        return held
      })

      if (config.migrate) yield* migrate(sql).pipe(Effect.orDie)

      const write = Effect.gen(function* () {
        const shards = yield* shardsHeld
        const entities = yield* sharding.activeEntityCount
        const now = Date.now()
        yield* sql`INSERT INTO tessera_runners (address, mode, shards, entities, zone, started_at, seen_at)
          VALUES (${self}, ${mode}, ${shards}, ${entities}, ${zone}, ${startedAt}, ${now})
          ON CONFLICT (address) DO UPDATE SET mode = excluded.mode, shards = excluded.shards,
            entities = excluded.entities, zone = excluded.zone, started_at = excluded.started_at,
            seen_at = excluded.seen_at`
      })
      // A black-holed server never answers and interrupting a query on it may itself wait: the write runs in its
      // own fiber and only the wait for it has the deadline, so a report always settles in time.
      const report = Effect.gen(function* () {
        const fiber = yield* Effect.forkIn(write, layerScope, { startImmediately: true })
        yield* Fiber.join(fiber).pipe(
          Effect.timeout(probeTimeoutMs),
          Effect.onExit(() =>
            fiber.pollUnsafe() === undefined ? Effect.forkIn(Fiber.interrupt(fiber), layerScope) : Effect.void
          )
        )
      }).pipe(
        Effect.matchCauseEffect({
          onSuccess: () => Ref.set(probe, { ok: true, at: Date.now() }),
          onFailure: (cause) =>
            Effect.andThen(
              Ref.set(probe, { ok: false, at: Date.now() }),
              Effect.logWarning("runner status report failed", cause)
            )
        })
      )
      yield* report
      yield* Effect.forkScoped(Effect.repeat(report, Schedule.spaced(reportIntervalMs)))
      // Bounded, so a runner cut off from storage still shuts down; its row then goes stale instead.
      yield* Effect.addFinalizer(() =>
        sql`DELETE FROM tessera_runners WHERE address = ${self}`.pipe(Effect.timeout(probeTimeoutMs), Effect.ignore)
      )

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

      const readiness: Effect.Effect<Readiness> = Effect.gen(function* () {
        // A stopping node is out of rotation first, while it still serves what it admitted (drain.ts).
        if (drain.isDraining()) return "draining"
        const last = yield* Ref.get(probe)
        if (!last.ok || Date.now() - last.at > staleAfterMs) return "storage unreachable"
        if (mode === "single") return "ready"
        return (yield* shardsHeld) > 0 ? "ready" : "starting"
      })

      return NodeStatus.of({
        self,
        mode,
        shardsHeld,
        ready: Effect.map(readiness, (r) => r === "ready"),
        readiness,
        cluster
      })
    })
  )
