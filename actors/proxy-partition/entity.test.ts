/**
 * The partition entity in an in-process cluster with graph zones: partitions live in their zone's shard group, and
 * a request addressed through the bare `ProxyPartition` (the `default` group) is refused instead of starting a
 * second instance of the partition.
 */
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option } from "effect"
import {
  EntityId,
  MessageStorage,
  RunnerHealth,
  RunnerStorage,
  Runners,
  Sharding,
  ShardingConfig
} from "effect/cluster"
import { shardingConfig } from "../../runtime/cluster.ts"
import * as Config from "../../runtime/config.ts"
import * as SqliteClient from "../../runtime/SqliteClient.ts"
import * as Valkey from "../../runtime/Valkey.ts"
import { tempDataDir } from "../../test/harness.ts"
import * as ProxyPartitionEntity from "./entity.ts"
import { ProxyPartition } from "./protocol.ts"

const zoned = (dir: string) => {
  const config = Config.layer({
    graphZones: ["a", "b"],
    zone: Option.some("a"),
    graphPartitions: 8,
    graphCold: Option.some(join(dir, "cold"))
  })
  const cluster = Layer.unwrap(
    Effect.map(Config.TesseraConfig, (cfg: Config.TesseraConfigShape) =>
      Sharding.layer.pipe(
        Layer.provideMerge(Runners.layerNoop),
        Layer.provideMerge(MessageStorage.layerMemory),
        Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
        Layer.provide(ShardingConfig.layer(shardingConfig(cfg, "single")))
      )
    )
  )
  return ProxyPartitionEntity.layer.pipe(
    Layer.provideMerge(cluster),
    Layer.provideMerge(Valkey.layerMemory),
    Layer.provideMerge(SqliteClient.layer({ filename: join(dir, "t.db") })),
    Layer.provideMerge(config)
  )
}

describe("ProxyPartition with graph zones (in-process cluster)", () => {
  it.live("serves partitions from their zone's shard group and refuses the default group", () => {
    const data = tempDataDir()
    return Effect.gen(function* () {
      const config = yield* Config.TesseraConfig
      const client = yield* ProxyPartitionEntity.zonedProxyPartition(config).client
      for (let p = 0; p < 8; p++) {
        const info = yield* client(String(p)).Info()
        assert.strictEqual(info.preferredZone, p % 2 === 0 ? "a" : "b")
        assert.strictEqual(info.zone, "a")
      }
      assert.strictEqual((yield* ProxyPartition.getShardId(EntityId.make("3"))).group, "default")
      assert.strictEqual(
        (yield* ProxyPartitionEntity.zonedProxyPartition(config).getShardId(EntityId.make("3"))).group,
        "graph-b"
      )

      const bare = yield* ProxyPartition.client
      const exit = yield* Effect.exit(bare("3").Info())
      assert.isTrue(Exit.isFailure(exit))
      assert.include(JSON.stringify(exit), "GraphStorageError")
      assert.include(JSON.stringify(exit), "expected graph-b")
      // The real partition 3 is untouched and still answers.
      assert.strictEqual((yield* client("3").Info()).partition, 3)
    }).pipe(Effect.provide(zoned(data.dir)), Effect.ensuring(Effect.sync(data.remove)))
  })
})
