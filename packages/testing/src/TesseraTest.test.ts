// An example of testing an actor with @tessera/testing: the Probe actor in an in-process cluster.
import { assert, layer } from "@effect/vitest"
import { Valkey } from "@tessera/platform/Valkey"
import { Effect } from "effect"
import { Entity } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { ProbeEntityLayer } from "../../../actors/probe/entity.ts"
import { Probe } from "../../../actors/probe/protocol.ts"
import { TesseraTest } from "./index.ts"

layer(TesseraTest.layerWith(ProbeEntityLayer), { excludeTestServices: true })(
  "TesseraTest.layerWith (example)",
  (it) => {
    it.effect("sends messages to an entity in the in-process cluster", () =>
      Effect.gen(function* () {
        const clientFor = yield* Probe.client
        const first = yield* clientFor("p-1").Where({})
        const second = yield* clientFor("p-1").Where({ note: "again" })
        assert.strictEqual(first.entityId, "p-1")
        assert.strictEqual(second.handled, 2, "the entity keeps its state between messages")
        const other = yield* clientFor("p-2").Where({})
        assert.strictEqual(other.handled, 1, "each entity id has its own state")
      })
    )

    it.effect("provides memory Valkey and an in-memory SQL database", () =>
      Effect.gen(function* () {
        const valkey = yield* Valkey
        yield* valkey.set("k", "v")
        assert.strictEqual(yield* valkey.get("k"), "v")
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`
        yield* sql`INSERT INTO notes (id, body) VALUES (${1}, ${"hello"})`
        const rows = yield* sql<{ body: string }>`SELECT body FROM notes WHERE id = ${1}`
        assert.deepStrictEqual(
          rows.map((row) => row.body),
          ["hello"]
        )
      })
    )
  }
)

layer(TesseraTest.layer(), { excludeTestServices: true })("Entity.makeTestClient with TesseraTest.layer", (it) => {
  it.effect("drives one entity without the sharding machinery", () =>
    Effect.gen(function* () {
      const makeClient = yield* Entity.makeTestClient(Probe, ProbeEntityLayer)
      const client = yield* makeClient("solo")
      const reply = yield* client.Where({})
      assert.strictEqual(reply.entityId, "solo")
      assert.strictEqual(reply.runner, "localhost:3000")
    })
  )
})
