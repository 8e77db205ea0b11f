/**
 * Test layers for people who write actors on Tessera: an in-process cluster (Effect's `TestRunner`: every
 * shard local, in-memory message and runner storage), the in-memory Valkey, an in-memory SQL database with
 * the same dialect as the embedded node, and the node facts a host provides.
 *
 * ```ts
 * import { TesseraTest } from "@tessera/testing"
 *
 * layer(TesseraTest.layerModule(CounterModule), { excludeTestServices: true })("counter", (it) => {
 *   it.effect("counts", () => Effect.gen(function*() {
 *     const counter = yield* Counter.client
 *     assert.strictEqual(yield* counter("c-1").Increment({ by: 2 }), 2)
 *   }))
 * })
 * ```
 *
 * Pass `excludeTestServices: true` to `layer(...)` (or use `it.live`): cluster tests wait on real time, and the
 * default test clock would never advance.
 */
import type { Module } from "@tessera/contracts"
import * as NodeInfo from "@tessera/platform/NodeInfo"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import * as Valkey from "@tessera/platform/Valkey"
import { Layer } from "effect"
import { type MessageStorage, type Runners, type Sharding, ShardingConfig, TestRunner } from "effect/cluster"
import type { SqlClient, SqlError } from "effect/sql"

/** Everything an actor's entity layer may need, in memory. */
export type Services =
  | Sharding.Sharding
  | Runners.Runners
  | MessageStorage.MessageStorage
  | MessageStorage.MemoryDriver
  | ShardingConfig.ShardingConfig
  | Valkey.Valkey
  | SqlClient.SqlClient
  | NodeInfo.NodeInfo

export interface Options {
  /** The node's data folder modules see (default the system's temporary folder). */
  readonly dataDir?: string | undefined
  readonly zone?: string | undefined
}

/** The in-process cluster plus memory Valkey and an in-memory SQL database (fresh per layer build). */
export const layer = (options: Options = {}): Layer.Layer<Services, SqlError.SqlError> =>
  Layer.mergeAll(
    TestRunner.layer,
    ShardingConfig.layer(),
    Valkey.layerMemory,
    SqliteClient.layer({ filename: ":memory:" }),
    NodeInfo.layer({ dataDir: options.dataDir ?? (process.env.TMPDIR || "/tmp"), zone: options.zone })
  )

/** `layer()` with the given entity layers built on top of it, all services still exposed to the test. */
export const layerWith = <A, E, R>(
  entities: Layer.Layer<A, E, R>,
  options?: Options
): Layer.Layer<A | Services, E | SqlError.SqlError, Exclude<R, Services>> =>
  Layer.provideMerge(entities, layer(options)) as never

/**
 * A module as a host runs it, in memory: its migrations first, then its entities and background work on its
 * config slice (`config` replaces the module's own, e.g. `CounterConfig.layer({ limit: 3 })`).
 */
export const layerModule = (
  module: Module.Any,
  options: Options & { readonly config?: Layer.Layer<any, unknown, never> | undefined } = {}
): Layer.Layer<Services, unknown> => {
  const config = options.config ?? module.config ?? Layer.empty
  const migrations = module.migrations === undefined ? Layer.empty : SqlMigrator.layer(module.migrations)
  return Layer.provideMerge(
    module.layer.pipe(Layer.provide(config), Layer.provide(migrations)),
    layer(options)
  ) as never
}
