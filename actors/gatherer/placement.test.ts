/**
 * Gatherer zone placement: the replica -> shard group mapping, `TESSERA_GATHER_ZONES` parsing, and on a single node
 * (real Postgres + Redis) that a gatherer addressed outside its zone's group refuses with a typed error.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Option, Redacted } from "effect"
import { layerSingle } from "../../runtime/cluster.ts"
import * as Config from "../../runtime/config.ts"
import * as Hosted from "../../runtime/hosted.ts"
import { layerSql, layerValkey } from "../../runtime/storage.ts"
import { freshDatabase, redisUrl } from "../../test/harness.ts"
import { layer as gatherConfig, config as gatherConfigFromEnv } from "./config.ts"
import { zonedGatherer } from "./entity.ts"
import { GatherModule } from "./module.ts"
import { Gatherer, gathererEntityId, gathererShardGroup } from "./protocol.ts"

const parse = (env: Record<string, string>) =>
  Effect.runPromiseExit(gatherConfigFromEnv.parse(ConfigProvider.fromEnvRecord(env)))

describe("gatherer shard groups", () => {
  it("puts replica r in the group of zone r mod n, the connection aside", () => {
    const zones = ["a", "b", "c"]
    for (let c = 0; c < 5; c++) {
      const groups = [0, 1, 2].map((r) => gathererShardGroup(gathererEntityId(r, c), zones))
      assert.deepStrictEqual(groups, ["gatherer-a", "gatherer-b", "gatherer-c"], `connection ${c}`)
    }
    assert.strictEqual(gathererShardGroup("3/0", zones), "gatherer-a")
    assert.strictEqual(gathererShardGroup("4/7", zones), "gatherer-b")
    assert.strictEqual(gathererShardGroup("1/0", ["a", "b"]), "gatherer-b")
    assert.strictEqual(gathererShardGroup("2/0", ["a", "b"]), "gatherer-a")
  })

  it("keeps everything in default without zones, and ids that are not replica/connection", () => {
    assert.strictEqual(gathererShardGroup("0/0", []), "default")
    assert.strictEqual(gathererShardGroup("2/5", []), "default")
    assert.strictEqual(gathererShardGroup("x", ["a"]), "default")
    assert.strictEqual(gathererShardGroup("0/0/0", ["a"]), "default")
  })

  it("reads TESSERA_GATHER_ZONES: empty by default, trimmed, bad or repeated zones refused", async () => {
    const none = await parse({})
    assert.isTrue(Exit.isSuccess(none) && none.value.gatherZones.length === 0)
    const some = await parse({ TESSERA_GATHER_ZONES: " us-east-1a, us-east-1b ,us-east-1c" })
    assert.isTrue(Exit.isSuccess(some))
    if (Exit.isSuccess(some))
      assert.deepStrictEqual([...some.value.gatherZones], ["us-east-1a", "us-east-1b", "us-east-1c"])
    assert.isTrue(Exit.isFailure(await parse({ TESSERA_GATHER_ZONES: "a,a" })))
    assert.isTrue(Exit.isFailure(await parse({ TESSERA_GATHER_ZONES: "a,b c" })))
  })
})

describe("a gatherer addressed in the wrong shard group (single node, zones a and b)", () => {
  it.live(
    "refuses with GathererMisplaced, and answers through the zoned entity",
    () => {
      const db = freshDatabase("gplace")
      const module = { ...GatherModule, config: gatherConfig({ gatherZones: ["a", "b"], dedupShards: 2 }) }
      const node = Hosted.layerModules([module]).pipe(
        Layer.provideMerge(layerSingle([module])),
        Layer.provideMerge(layerSql),
        Layer.provideMerge(layerValkey),
        Layer.provideMerge(
          Config.layer({
            databaseUrl: Option.some(Redacted.make(db.url)),
            redisUrl: Option.some(Redacted.make(redisUrl)),
            shardsPerGroup: 16
          })
        )
      )
      return Effect.gen(function* () {
        const bare = yield* Gatherer.client
        const zoned = yield* zonedGatherer({ gatherZones: ["a", "b"] }).client
        const refused = yield* Effect.flip(bare("1/0").Status())
        assert.strictEqual(refused._tag, "GathererMisplaced")
        assert.include(refused.message, "expected gatherer-b")
        const ensured = yield* Effect.flip(bare("0/0").Ensure())
        assert.strictEqual(ensured._tag, "GathererMisplaced")
        const status = yield* zoned("1/0").Status()
        assert.strictEqual(status.id, "1/0")
        assert.isFalse(status.connected)
      }).pipe(Effect.provide(node), Effect.ensuring(Effect.sync(() => db.drop())))
    },
    60_000
  )
})
