// Guards Effect-TS/effect#6508 (closed): an entity ran on two runners when a runner's SQL shard-lock refresh hung.
// The pinned effect (4.1.0) times the refresh out, marks lock storage unhealthy and stops that runner's entities
// before its locks can expire. Here runner A's Postgres traffic is frozen behind a proxy (queries hang, the
// connection stays open) while A keeps running and keeps its cluster transport; runner B takes A's shards once
// the locks expire. A must never answer for an entity after B has started it.
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { SeedApi } from "../actors/api.ts"
import { freshDatabase, pausableProxy, redisUrl, startProcess } from "./harness.ts"

const entityIds = Array.from({ length: 24 }, (_, i) => `hang-${i}`)

const where = (url: string, entityId: string) =>
  Effect.scoped(
    Effect.flatMap(TesseraClient.make(SeedApi, { url }), (client) =>
      client["Probe.Where"]({ entityId, payload: {} }).pipe(
        Effect.map((reply) => reply.runner),
        Effect.timeout("1500 millis"),
        Effect.orElseSucceed(() => "unanswered")
      )
    )
  )

describe("a runner whose SQL hangs (Effect-TS/effect#6508 guard)", () => {
  it.live(
    "stops its entities before the survivor takes them: no entity answers from two runners",
    () =>
      Effect.gen(function* () {
        const database = freshDatabase("hang")
        yield* Effect.addFinalizer(() => Effect.sync(() => database.drop()))
        const proxy = yield* Effect.acquireRelease(
          Effect.promise(() => pausableProxy({ host: "127.0.0.1", port: 5432 })),
          (p) => Effect.promise(() => p.close())
        )
        const viaProxy = database.url.replace("127.0.0.1:5432", `127.0.0.1:${proxy.port}`)
        const start = (name: string, url: string) =>
          Effect.acquireRelease(
            Effect.promise(() => startProcess(name, { env: { DATABASE_URL: url, REDIS_URL: redisUrl } })),
            (runner) =>
              Effect.promise(async () => {
                runner.child.kill("SIGKILL")
                await runner.exited
              })
          )
        const a = yield* start("runner-a", viaProxy)
        const b = yield* start("runner-b", database.url)
        const addressA = `127.0.0.1:${a.runnerPort}`
        const addressB = `127.0.0.1:${b.runnerPort}`

        // Find entities hosted by A once shards are balanced.
        let onA: Array<string> = []
        const balancedBy = Date.now() + 30_000
        while (Date.now() < balancedBy && onA.length === 0) {
          const placement = yield* Effect.forEach(entityIds, (id) => where(b.url, id), { concurrency: 8 })
          if (placement.includes(addressB)) onA = entityIds.filter((_, i) => placement[i] === addressA)
          if (onA.length === 0) yield* Effect.sleep("250 millis")
        }
        assert.isAbove(onA.length, 0, "some entities live on runner A")

        proxy.pause()
        const frozenAt = Date.now()
        // Until every A entity answers from B, and for a while after, A must never answer for an entity that B
        // has already answered for.
        const answeredByB = new Set<string>()
        const violations: Array<string> = []
        let allOnBAt: number | undefined
        while (Date.now() - frozenAt < 25_000) {
          const seenByB = new Set(answeredByB)
          const answers = yield* Effect.forEach(
            onA,
            (id) => Effect.all([where(a.url, id), where(b.url, id)], { concurrency: 2 }),
            { concurrency: "unbounded" }
          )
          answers.forEach(([viaA, viaB], i) => {
            const id = onA[i]
            if (viaA === addressA && seenByB.has(id)) violations.push(`${id} answered by A after B`)
            if (viaB === addressA && seenByB.has(id)) violations.push(`${id} routed to A after B`)
            if (viaB === addressB) answeredByB.add(id)
          })
          if (allOnBAt === undefined && answeredByB.size === onA.length) allOnBAt = Date.now()
          if (allOnBAt !== undefined && Date.now() - allOnBAt > 3000) break
          yield* Effect.sleep("100 millis")
        }
        proxy.resume()
        assert.deepStrictEqual(violations, [])
        assert.strictEqual(answeredByB.size, onA.length, "runner B took over every entity of the frozen runner")
        console.log(
          `storage hang: ${onA.length} entities moved to B ${(((allOnBAt ?? Date.now()) - frozenAt) / 1000).toFixed(1)} s after A's SQL froze; A never answered after B`
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
