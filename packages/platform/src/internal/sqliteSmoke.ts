/**
 * A runtime smoke check of the embedded client, run under Deno by `SqliteClient.deno.test.ts` (and runnable under
 * Node): `<runtime> packages/platform/src/internal/sqliteSmoke.ts <database file>`. Prints one JSON line of what it observed.
 * Covers the paths where Deno's `node:sqlite` differs from Node's (parameter binding, bigints, blobs) and a persisted
 * cluster message through `SingleRunner` on the same file.
 */

import { ClusterSchema, Entity, SingleRunner } from "effect/cluster"
import * as Digest from "effect/crypto/Digest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Rpc } from "effect/rpc"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqliteClient from "../SqliteClient.ts"

const Echo = Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }).annotate(
  ClusterSchema.Persisted,
  true
)
const Echoer = Entity.make("Echoer", [Echo])
const EchoerLayer = Echoer.toLayer(Effect.succeed(Echoer.of({ Echo: ({ payload }) => Effect.succeed(payload.text) })))

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE smoke (id INTEGER PRIMARY KEY, flag INTEGER, big INTEGER, bytes BLOB, label TEXT)`
  yield* sql.withTransaction(
    sql`INSERT INTO smoke (flag, big, bytes, label) VALUES (${true}, ${2n ** 60n}, ${new Uint8Array([1, 2])}, ${null})`
  )
  const rolledBack = yield* sql
    .withTransaction(Effect.andThen(sql`INSERT INTO smoke (flag) VALUES (${false})`, Effect.fail("rollback")))
    .pipe(Effect.flip)
  const [row] = yield* sql<any>`SELECT * FROM smoke`.pipe(Effect.provideService(SqlClient.SafeIntegers, true))
  const streamed = yield* sql`SELECT id FROM smoke`.stream.pipe(Stream.runCollect)
  const syntax = yield* Effect.flip(sql`SELEC 1`)
  const echoed = yield* Effect.flatMap(Echoer.client, (client) => client("e-1").Echo({ text: "hi" }))
  const [stored] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM cluster_messages`
  return {
    rolledBack,
    flag: String(row.flag),
    big: String(row.big),
    bytes: Array.from(row.bytes as Uint8Array),
    label: row.label,
    streamed: streamed.length,
    syntax: syntax.reason._tag,
    echoed,
    storedMessages: stored.n
  }
})

const filename = (globalThis as any).Deno?.args?.[0] ?? process.argv[2]
const layer = EchoerLayer.pipe(
  Layer.provideMerge(
    SingleRunner.layer({ shardingConfig: { shardsPerGroup: 4, entityTerminationTimeout: "1 second" } })
  ),
  Layer.provide(Digest.layerWebCrypto),
  Layer.provideMerge(SqliteClient.layer({ filename }))
)

Effect.runPromise(program.pipe(Effect.provide(layer))).then(
  (result) => {
    console.log(JSON.stringify(result))
  },
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
