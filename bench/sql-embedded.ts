/**
 * Persisted cluster messages per second through one in-process runner (`SingleRunner`-style wiring) on SQL storage:
 * the embedded client (`@tessera/platform/SqliteClient`, synchronous NORMAL and FULL) vs PostgreSQL via @effect/sql-pg.
 * Not part of the bench dispatcher:
 * `node bench/sql-embedded.ts [--messages N] [--entities K] [--rounds R] [--targets normal,full,pg] [--json]`
 * (or `npx node ...` so Node 24 runs it). Each message is a persisted request awaited for its reply; K entities are
 * driven concurrently, one request in flight per entity.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import { pgPoolConfig } from "@tessera/runtime/storage"
import {
  ClusterSchema,
  Entity,
  RunnerHealth,
  Runners,
  Sharding,
  ShardingConfig,
  SqlMessageStorage,
  SqlRunnerStorage
} from "effect/cluster"
import * as Digest from "effect/crypto/Digest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Rpc } from "effect/rpc"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"

const Add = Rpc.make("Add", { payload: { amount: Schema.Int }, success: Schema.Int }).annotate(
  ClusterSchema.Persisted,
  true
)
const Counter = Entity.make("BenchCounter", [Add])
const CounterLayer = Counter.toLayer(
  Effect.sync(() => {
    let total = 0
    return Counter.of({ Add: ({ payload }) => Effect.sync(() => (total += payload.amount)) })
  })
)

const runnerLayer = (prefix: string) =>
  Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provideMerge(SqlMessageStorage.layerWith({ prefix })),
    Layer.provide([Layer.orDie(SqlRunnerStorage.layerWith({ prefix })), RunnerHealth.layerNoop]),
    Layer.provide(ShardingConfig.layer({ shardsPerGroup: 32 })),
    Layer.provide(Digest.layerWebCrypto)
  )

const argValue = (args: ReadonlyArray<string>, name: string, fallback: number) => {
  const at = args.indexOf(name)
  return at === -1 ? fallback : Number(args[at + 1])
}

const measure = <E>(
  sqlLayer: Layer.Layer<SqlClient.SqlClient, E>,
  prefix: string,
  messages: number,
  entities: number
) =>
  Effect.gen(function* () {
    const clientFor = yield* Counter.client
    const perEntity = Math.ceil(messages / entities)
    // Warm-up: activate every entity once.
    yield* Effect.forEach(
      Array.from({ length: entities }, (_, i) => i),
      (i) => clientFor(`c-${i}`).Add({ amount: 0 }),
      {
        concurrency: entities,
        discard: true
      }
    )
    const start = performance.now()
    yield* Effect.forEach(
      Array.from({ length: entities }, (_, i) => i),
      (i) =>
        Effect.gen(function* () {
          const counter = clientFor(`c-${i}`)
          for (let n = 0; n < perEntity; n++) yield* counter.Add({ amount: 1 })
        }),
      { concurrency: entities, discard: true }
    )
    const seconds = (performance.now() - start) / 1000
    return Math.round((perEntity * entities) / seconds)
  }).pipe(Effect.provide(CounterLayer.pipe(Layer.provideMerge(runnerLayer(prefix)), Layer.provide(sqlLayer))))

const pgConfig = { host: "127.0.0.1", port: 5432, username: "postgres", database: "test" } as const

export const run = async (args: ReadonlyArray<string>) => {
  const messages = argValue(args, "--messages", 2000)
  const entities = argValue(args, "--entities", 50)
  const rounds = argValue(args, "--rounds", 3)
  const targetsAt = args.indexOf("--targets")
  const targets = new Set((targetsAt === -1 ? "normal,full,pg" : args[targetsAt + 1]).split(","))
  const results: Record<string, Array<number>> = {
    "sqlite (synchronous NORMAL)": [],
    "sqlite (synchronous FULL)": [],
    postgres: []
  }
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-sql-"))
  const schema = `tessera_bench_${process.pid}_${Date.now().toString(36)}`
  const admin = PgClient.layer(pgPoolConfig(pgConfig))
  const inAdmin = (statement: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
    Effect.runPromise(
      Effect.gen(function* () {
        yield* statement(yield* SqlClient.SqlClient)
      }).pipe(Effect.provide(admin))
    )
  await inAdmin((sql) => sql`CREATE SCHEMA ${sql(schema)}`)
  try {
    for (let round = 0; round < rounds; round++) {
      // A fresh file and fresh tables per round, so every round starts from empty storage.
      for (const synchronous of ["NORMAL", "FULL"] as const) {
        if (!targets.has(synchronous.toLowerCase())) continue
        const filename = join(dir, `round-${round}-${synchronous}.db`)
        const rate = await Effect.runPromise(
          measure(SqliteClient.layer({ filename, synchronous }), "bench", messages, entities)
        )
        results[`sqlite (synchronous ${synchronous})`].push(rate)
      }
      if (!targets.has("pg")) continue
      const pg = PgClient.layer(pgPoolConfig({ ...pgConfig, startupParameters: { search_path: schema } }))
      results.postgres.push(await Effect.runPromise(measure(pg, `bench_${round}`, messages, entities)))
    }
  } finally {
    await inAdmin((sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`)
    rmSync(dir, { recursive: true, force: true })
  }
  console.log(`persisted messages/s, ${messages} requests over ${entities} entities, one runner, ${rounds} rounds`)
  for (const [name, rates] of Object.entries(results)) {
    if (rates.length === 0) continue
    console.log(`${name.padEnd(30)} ${rates.map((r) => String(r).padStart(6)).join(" ")}`)
  }
  if (args.includes("--json")) console.log(JSON.stringify({ messages, entities, rounds, results }))
}

if (import.meta.main) await run(process.argv.slice(2))
