/**
 * The kill -9 failover scenario shared by test/failover.test.ts (runners under Node) and test/deno-cluster.test.ts
 * (runners under Deno): two runners on one fresh Postgres database, Probe entities spread over both, one runner
 * killed, and every entity answering from the survivor within 40 s.
 */
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { type Cluster, type StartOptions, startCluster, whereAll } from "./harness.ts"

const entityIds = Array.from({ length: 40 }, (_, i) => `probe-${i}`)

export const failoverScenario = (options: { readonly label: string; readonly command?: StartOptions["command"] }) =>
  Effect.gen(function* () {
    const cluster: Cluster = yield* Effect.acquireRelease(
      Effect.promise(() => startCluster(2, options)),
      (c) => Effect.promise(() => c.stop())
    )
    const [survivor, victim] = cluster.runners
    const survivorAddress = `127.0.0.1:${survivor.runnerPort}`
    const victimAddress = `127.0.0.1:${victim.runnerPort}`

    // Wait until shards are balanced and entities live on both runners.
    let placement: ReadonlyArray<string> = []
    const balancedBy = Date.now() + 30_000
    while (Date.now() < balancedBy) {
      placement = yield* whereAll(survivor.url, entityIds)
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
      after = yield* whereAll(survivor.url, entityIds)
      if (after.every((runner) => runner === survivorAddress)) break
      yield* Effect.sleep("100 millis")
    }
    const seconds = (Date.now() - killedAt) / 1000
    assert.deepStrictEqual(
      after,
      entityIds.map(() => survivorAddress),
      "every entity answers from the survivor"
    )
    const runtime = options.command?.bin.split("/").pop() ?? "node"
    console.log(
      `failover under ${runtime}: ${moved} of ${entityIds.length} entities moved to the survivor in ${seconds.toFixed(2)} s`
    )
  }).pipe(Effect.scoped)
