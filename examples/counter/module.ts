/** The counter module: what a Tessera host needs to run it (entities, tables, id rules). */
import { Module } from "@tessera/contracts"
import { Effect } from "effect"
import { CounterEntityLayer, migrations } from "./entity.ts"
import { CounterContract } from "./protocol.ts"

const idPattern = /^[a-z0-9-]{1,64}$/

export const CounterModule = Module.make({
  contract: CounterContract,
  layer: CounterEntityLayer,
  migrations: { table: "counter_migrations", migrations },
  // Checked at the gateway: a bad id is answered `InvalidEntityId` and never wakes an entity.
  entityIds: Effect.succeed({
    Counter: (id: string) => Effect.succeed(idPattern.test(id) ? undefined : "a counter id is 1-64 of a-z, 0-9 and '-'")
  })
})
