/**
 * The partition entity in an in-process cluster with graph zones: partitions live in their zone's shard group, and
 * a request addressed through the bare `ProxyPartition` (the `default` group) is refused instead of starting a
 * second instance of the partition.
 */
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as NodeInfo from "@tessera/platform/NodeInfo"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import * as Valkey from "@tessera/platform/Valkey"
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
import { tempDataDir } from "../../test/harness.ts"
import * as GraphConfig from "./config.ts"
import { zoneShardGroup } from "./core.ts"
import * as ProxyPartitionEntity from "./entity.ts"
import { migrations, migrationsTable } from "./Partition.ts"
import { ProxyPartition } from "./protocol.ts"

const zoned = (dir: string) => {
  const config = GraphConfig.layer({
    graphZones: ["a", "b"],
    graphPartitions: 8,
    graphCold: Option.some(join(dir, "cold"))
  })
  const zoneGroups = ["a", "b"].map((zone) => ({ group: zoneShardGroup(zone), zone }))
  const cluster = Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provideMerge(MessageStorage.layerMemory),
    Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
    Layer.provide(
      ShardingConfig.layer(shardingConfig({ ...Config.defaults, zone: Option.some("a") }, "single", zoneGroups))
    )
  )
  return ProxyPartitionEntity.layer.pipe(
    Layer.provide(SqlMigrator.layer({ migrations, table: migrationsTable })),
    Layer.provideMerge(cluster),
    Layer.provideMerge(NodeInfo.layer({ zone: "a", dataDir: dir })),
    Layer.provideMerge(Valkey.layerMemory),
    Layer.provideMerge(SqliteClient.layer({ filename: join(dir, "t.db") })),
    Layer.provideMerge(config)
  )
}

describe("ProxyPartition with graph zones (in-process cluster)", () => {
  it.live("serves partitions from their zone's shard group and refuses the default group", () => {
    const data = tempDataDir()
    return Effect.gen(function* () {
      const config = yield* GraphConfig.GraphConfig
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
