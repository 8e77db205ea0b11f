// Testing the counter with @tessera/testing: the module in an in-process cluster on an in-memory SQL database.
import { assert, layer } from "@effect/vitest"
import { TesseraTest } from "@tessera/testing"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { CounterModule } from "./module.ts"
import { Counter } from "./protocol.ts"

layer(TesseraTest.layerModule(CounterModule), { excludeTestServices: true })("Counter", (it) => {
  it.effect("counts per entity id and keeps the value in the counters table", () =>
    Effect.gen(function* () {
      const counter = yield* Counter.client
      assert.strictEqual(yield* counter("c-1").Get(), 0)
      assert.strictEqual(yield* counter("c-1").Increment({ by: 2 }), 2)
      assert.strictEqual(yield* counter("c-1").Increment({ by: 3 }), 5)
      assert.strictEqual(yield* counter("c-2").Increment({ by: -1 }), -1)
      assert.strictEqual(yield* counter("c-1").Get(), 5)
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ id: string; value: number }>`SELECT id, value FROM counters ORDER BY id`
      assert.deepStrictEqual(
        rows.map((row) => [row.id, Number(row.value)]),
        [
          ["c-1", 5],
          ["c-2", -1]
        ]
      )
    })
  )
})
