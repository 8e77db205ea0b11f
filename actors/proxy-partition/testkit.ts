/**
 * Test fixture: one runner's worth of the graph module in Effect's in-process cluster (`TestRunner`), on a real,
 * migrated PostgreSQL, the hot tier a test picks and a local cold tier.
 */
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import * as NodeInfo from "@tessera/platform/NodeInfo"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import type * as Valkey from "@tessera/platform/Valkey"
import { Layer, Option, Redacted } from "effect"
import { ShardingConfig, TestRunner } from "effect/cluster"
import * as GraphConfig from "./config.ts"
import * as ProxyPartitionEntity from "./entity.ts"
import { migrations, migrationsTable } from "./Partition.ts"

export interface InProcessRunnerOptions<E> {
  readonly databaseUrl: string
  /** Node data folder; the cold tier is its `cold` folder. */
  readonly dataDir: string
  /** The hot tier: `Valkey.layerMemory` or a real Redis under a key prefix. */
  readonly valkey: Layer.Layer<Valkey.Valkey, E>
  /** Graph settings besides the cold tier. */
  readonly graph: Partial<GraphConfig.GraphConfigShape>
}

/** The partition entities and everything they need; the in-process cluster ends a dying activation and builds anew. */
export const inProcessRunner = <E>(options: InProcessRunnerOptions<E>) =>
  ProxyPartitionEntity.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        TestRunner.layer,
        ShardingConfig.layer(),
        SqlMigrator.layer({ migrations, table: migrationsTable }).pipe(
          Layer.provideMerge(PgClient.layer({ url: Redacted.make(options.databaseUrl) }))
        ),
        options.valkey,
        NodeInfo.layer({ dataDir: options.dataDir }),
        GraphConfig.layer({ graphCold: Option.some(join(options.dataDir, "cold")), ...options.graph })
      )
    )
  )
