/**
 * The cold tier's two implementations against one contract: the local folder, and S3 through
 * `@aws-sdk/client-s3` against a real S3-compatible server on loopback (`s3rver`, from npm), not a mock.
 * Then a partition demoted to and promoted from S3.
 */
import { createRequire } from "node:module"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { layerIoredis, Valkey } from "@tessera/platform/Valkey"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { tempDataDir } from "../../test/harness.ts"
import { makePartition, migrations, migrationsTable, readMeta } from "./Partition.ts"

interface S3rverInstance {
  run: () => Promise<{ port: number }>
  close: () => Promise<void>
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance
const S3rver = createRequire(import.meta.url)("s3rver") as S3rverCtor

const credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }

/** A local S3 server for the duration of the scope; returns its endpoint. */
const s3Server = Effect.acquireRelease(
  Effect.promise(async () => {
    const data = tempDataDir()
    const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: data.dir })
    const { port } = await server.run()
    return { server, data, endpoint: `http://127.0.0.1:${port}` }
  }),
  ({ server, data }) => Effect.promise(() => server.close().finally(data.remove))
)

const contract = (store: ObjectStore.ObjectStoreShape) =>
  Effect.gen(function* () {
    assert.isNull(yield* store.get("graph/partitions/1/none.json"))
    const bytes = new TextEncoder().encode('{"hello":"cold"}')
    yield* store.put("graph/partitions/1/a.json", bytes)
    assert.deepStrictEqual(yield* store.get("graph/partitions/1/a.json"), bytes)
    yield* store.put("graph/partitions/1/a.json", new TextEncoder().encode("v2"))
    assert.strictEqual(new TextDecoder().decode((yield* store.get("graph/partitions/1/a.json"))!), "v2")
    const large = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251)
    yield* store.put("graph/partitions/2/large.bin", large)
    assert.deepStrictEqual(yield* store.get("graph/partitions/2/large.bin"), large)
    yield* store.delete("graph/partitions/1/a.json")
    assert.isNull(yield* store.get("graph/partitions/1/a.json"))
    yield* store.delete("graph/partitions/1/a.json")
    // Keys that could escape the folder are refused.
    const escaped = yield* Effect.flip(store.put("../outside", bytes))
    assert.strictEqual(escaped._tag, "ObjectStoreError")
  })

describe("ObjectStore", () => {
  it.live("local folder honours the contract", () =>
    Effect.gen(function* () {
      const data = tempDataDir()
      yield* contract(ObjectStore.makeLocal({ root: data.dir })).pipe(Effect.ensuring(Effect.sync(data.remove)))
    })
  )

  it.live("S3 (client-s3 against a local s3rver) honours the contract", () =>
    Effect.gen(function* () {
      const { endpoint } = yield* s3Server
      const store = yield* ObjectStore.makeS3({
        bucket: "tessera-cold",
        prefix: "test",
        endpoint,
        credentials,
        createBucket: true
      })
      assert.strictEqual(store.location, "s3://tessera-cold/test/")
      yield* contract(store)
    }).pipe(Effect.scoped)
  )

  it.live("a partition demotes to S3 and promotes back", () =>
    Effect.gen(function* () {
      const { endpoint } = yield* s3Server
      const data = tempDataDir()
      yield* Effect.addFinalizer(() => Effect.sync(data.remove))
      const prefix = `test:pps3:${Date.now().toString(36)}:`
      const services = yield* Layer.build(
        Layer.mergeAll(
          layerIoredis({ url: process.env.TESSERA_TEST_REDIS ?? "redis://127.0.0.1:6379", keyPrefix: prefix }),
          SqlMigrator.layer({ migrations, table: migrationsTable }).pipe(
            Layer.provideMerge(SqliteClient.layer({ filename: join(data.dir, "t.db") }))
          ),
          ObjectStore.layerS3({ bucket: "cold", endpoint, credentials, createBucket: true })
        )
      )
      yield* Effect.gen(function* () {
        const valkey = yield* Valkey
        const sql = yield* SqlClient.SqlClient
        const cold = yield* ObjectStore.ObjectStore
        const p = yield* makePartition({ partition: 2, keyPrefix: "g", valkey, sql, cold })
        for (let i = 0; i < 100; i++) yield* p.write(p.hot.put(`s${i}`, JSON.stringify({ i })))
        yield* p.hot.addEdge("s1", "e", "s2")
        yield* p.demote
        assert.deepStrictEqual(yield* valkey.keys("g:*"), ["g:{2}:owner"], "evicted; the owner fence stays")
        assert.strictEqual((yield* readMeta(sql, 2))?.tier, "cold")
        const again = yield* makePartition({ partition: 2, keyPrefix: "g", valkey, sql, cold })
        assert.strictEqual(yield* again.run(again.hot.get("s42")), '{"i":42}')
        assert.deepStrictEqual(yield* again.hot.neighbors("s1", undefined), [{ label: "e", id: "s2" }])
        assert.strictEqual(yield* again.hot.count, 100)
        const keys = yield* valkey.keys("*")
        if (keys.length > 0) yield* valkey.del(...keys)
      }).pipe(Effect.provide(services))
    }).pipe(Effect.scoped)
  )
})
