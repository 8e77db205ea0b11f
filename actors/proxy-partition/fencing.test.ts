// A partition activation whose owner epoch was claimed by another (as after its shard moved while it paused) has its
// metadata write refused, counts it and stands down; the activation the entity manager builds next does the work.
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as NodeInfo from "@tessera/platform/NodeInfo"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import * as Valkey from "@tessera/platform/Valkey"
import { Effect, Layer, Option, Redacted } from "effect"
import { ShardingConfig, TestRunner } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { freshDatabase, tempDataDir } from "../../test/harness.ts"
import * as GraphConfig from "./config.ts"
import { partitionOf, snapshotKey } from "./core.ts"
import * as ProxyPartitionEntity from "./entity.ts"
import * as GraphMetrics from "./metrics.ts"
import { claimPartition, migrations, migrationsTable, readMeta } from "./Partition.ts"
import { ProxyPartition } from "./protocol.ts"

const database = freshDatabase("graph_entity_fence")
afterAll(() => database.drop())

const partitions = 8

// The in-process cluster: its entity manager ends an activation whose handler dies and builds a new one.
const testLayer = (dir: string) =>
  ProxyPartitionEntity.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        TestRunner.layer,
        ShardingConfig.layer(),
        SqlMigrator.layer({ migrations, table: migrationsTable }).pipe(
          Layer.provideMerge(PgClient.layer({ url: Redacted.make(database.url) }))
        ),
        Valkey.layerMemory,
        NodeInfo.layer({ dataDir: dir }),
        GraphConfig.layer({ graphPartitions: partitions, graphCold: Option.some(join(dir, "cold")) })
      )
    )
  )

const epochOf = (partition: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ epoch: number | string }>`SELECT epoch FROM graph_partition_owners WHERE partition = ${partition}`,
      (rows) => Number(rows[0]?.epoch)
    )
  )

describe("a stale partition activation (real PostgreSQL)", () => {
  it.live("has its pointer swap refused, counts it and stands down; the next activation demotes", () => {
    const data = tempDataDir()
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const partition = 5
      const client = (yield* ProxyPartition.client)(String(partition))
      const staleWrites = GraphMetrics.staleOwnerWrites.labels({ partition: String(partition) })
      const before = staleWrites.value
      let id = "v0"
      for (let i = 0; partitionOf(id, partitions) !== partition; i++) id = `v${i}`

      yield* client.PutVertex({ id, properties: { n: 1 } })
      assert.strictEqual(yield* epochOf(partition), 1)
      // Another activation takes the partition over: this one's demotion is refused at the pointer swap, it stands
      // down, and the entity manager serves the request again with a new activation (a third claim).
      yield* claimPartition(sql, partition)
      const demoted = yield* client.Demote()
      assert.strictEqual(staleWrites.value, before + 1, "the refused write is counted")
      assert.strictEqual(yield* epochOf(partition), 3, "rebuilt: a third claim")
      assert.strictEqual(demoted.version, 1)
      const row = yield* readMeta(sql, partition)
      assert.strictEqual(row?.tier, "cold")
      assert.strictEqual(row?.location, snapshotKey(partition, 1, 3), "written by the new activation")
      assert.deepStrictEqual((yield* client.GetVertex({ id })).properties, { n: 1 })
    }).pipe(Effect.provide(testLayer(data.dir)), Effect.ensuring(Effect.sync(data.remove)))
  })
})
