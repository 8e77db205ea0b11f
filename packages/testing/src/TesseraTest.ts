/**
 * Test layers for people who write actors on Tessera: an in-process cluster (Effect's `TestRunner`: every
 * shard local, in-memory message and runner storage), the in-memory Valkey, an in-memory SQL database with
 * the same dialect as the embedded node, and Tessera's config with test-friendly defaults.
 *
 * ```ts
 * import { TesseraTest } from "@tessera/testing"
 *
 * layer(TesseraTest.layerWith(MyEntityLayer), { excludeTestServices: true })((it) => {
 *   it.effect("answers", () => Effect.gen(function*() {
 *     const client = yield* MyEntity.client
 *     assert.strictEqual(yield* client("id-1").Hello({ name: "x" }), "hello x")
 *   }))
 * })
 * ```
 *
 * Pass `excludeTestServices: true` to `layer(...)` (or use `it.live`): cluster tests wait on real time, and the
 * default test clock would never advance.
 */
import { Layer } from "effect"
import { type MessageStorage, type Runners, type Sharding, ShardingConfig, TestRunner } from "effect/cluster"
import type { SqlClient, SqlError } from "effect/sql"
import * as Config from "../../../runtime/config.ts"
import * as SqliteClient from "../../../runtime/SqliteClient.ts"
import * as Valkey from "../../../runtime/Valkey.ts"

/** Everything an actor's entity layer may need, in memory. */
export type Services =
  | Sharding.Sharding
  | Runners.Runners
  | MessageStorage.MessageStorage
  | MessageStorage.MemoryDriver
  | ShardingConfig.ShardingConfig
  | Valkey.Valkey
  | SqlClient.SqlClient
  | Config.TesseraConfig

/**
 * The in-process cluster plus memory Valkey, an in-memory SQL database (fresh per layer build) and config.
 * `options.config` overrides Tessera's config defaults.
 */
export const layer = (options?: {
  readonly config?: Partial<Config.TesseraConfigShape>
}): Layer.Layer<Services, SqlError.SqlError> =>
  Layer.mergeAll(
    TestRunner.layer,
    ShardingConfig.layer(),
    Valkey.layerMemory,
    SqliteClient.layer({ filename: ":memory:" }),
    Config.layer(options?.config)
  )

/** `layer()` with the given entity layers built on top of it, all services still exposed to the test. */
export const layerWith = <A, E, R>(
  entities: Layer.Layer<A, E, R>,
  options?: { readonly config?: Partial<Config.TesseraConfigShape> }
): Layer.Layer<A | Services, E | SqlError.SqlError, Exclude<R, Services>> =>
  Layer.provideMerge(entities, layer(options)) as never
