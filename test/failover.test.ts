import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { SeedApi } from "../actors/api.ts"
import { type Cluster, startCluster } from "./harness.ts"

const entityIds = Array.from({ length: 40 }, (_, i) => `probe-${i}`)

const whereAll = (url: string) =>
  Effect.scoped(
    Effect.flatMap(TesseraClient.make(SeedApi, { url }), (client) =>
      Effect.forEach(
        entityIds,
        (entityId) =>
          client["Probe.Where"]({ entityId, payload: {} }).pipe(
            Effect.map((reply) => reply.runner),
            Effect.timeout("2 seconds"),
            Effect.orElseSucceed(() => "unanswered")
          ),
        { concurrency: 8 }
      )
    )
  )

describe("two-runner cluster (real Postgres + Redis, separate processes)", () => {
  it.live(
    "entities spread over both runners answer again from the survivor after kill -9",
    () =>
      Effect.gen(function* () {
        const cluster: Cluster = yield* Effect.acquireRelease(
          Effect.promise(() => startCluster(2, { label: "failover" })),
          (c) => Effect.promise(() => c.stop())
        )
        const [survivor, victim] = cluster.runners
        const survivorAddress = `127.0.0.1:${survivor.runnerPort}`
        const victimAddress = `127.0.0.1:${victim.runnerPort}`

        // Wait until shards are balanced and entities live on both runners.
        let placement: ReadonlyArray<string> = []
        const balancedBy = Date.now() + 30_000
        while (Date.now() < balancedBy) {
          placement = yield* whereAll(survivor.url)
          if (placement.includes(survivorAddress) && placement.includes(victimAddress)) break
          yield* Effect.sleep("250 millis")
        }
        assert.include(placement, survivorAddress, `entities on the survivor: ${placement.join(",")}`)
        assert.include(placement, victimAddress, `entities on the victim: ${placement.join(",")}`)
        const moved = placement.filter((runner) => runner === victimAddress).length

        yield* Effect.promise(() => cluster.kill9(victim))
        const killedAt = Date.now()

        let after: ReadonlyArray<string> = []
        while (Date.now() - killedAt < 40_000) {
          after = yield* whereAll(survivor.url)
          if (after.every((runner) => runner === survivorAddress)) break
          yield* Effect.sleep("100 millis")
        }
        const seconds = (Date.now() - killedAt) / 1000
        assert.deepStrictEqual(
          after,
          entityIds.map(() => survivorAddress),
          "every entity answers from the survivor"
        )
        console.log(
          `failover: ${moved} of ${entityIds.length} entities moved to the survivor in ${seconds.toFixed(2)} s`
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
