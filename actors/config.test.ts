// Each seed module's config slice: defaults with no environment, and bad values refused with the variable named.
import { assert, describe, it } from "@effect/vitest"
import { type Config, ConfigProvider, Effect, Exit } from "effect"
import * as GatherConfig from "./gatherer/config.ts"
import * as GraphConfig from "./proxy-partition/config.ts"
import * as ShardConfig from "./symbol-shard/config.ts"

const parse = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.runPromiseExit(config.parse(ConfigProvider.fromEnvRecord(env)))

const cases: ReadonlyArray<readonly [string, Config.Config<unknown>, Record<string, string>, string]> = [
  ["graph", GraphConfig.config, { TESSERA_GRAPH_ZONES: "a,a" }, "listed twice"],
  ["graph", GraphConfig.config, { TESSERA_GRAPH_ZONES: "a,b c" }, "TESSERA_GRAPH_ZONES"],
  ["graph", GraphConfig.config, { TESSERA_GRAPH_PARTITIONS: "0" }, "TESSERA_GRAPH_PARTITIONS"],
  ["gatherer", GatherConfig.config, { TESSERA_DEMO_VENUE: "lots" }, "TESSERA_DEMO_VENUE"],
  ["gatherer", GatherConfig.config, { TESSERA_VENUE_URL: "http://venue" }, "TESSERA_VENUE_URL"],
  ["symbol-shard", ShardConfig.config, { TESSERA_SHARD_RECENT_KEYS: "-1" }, "TESSERA_SHARD_RECENT_KEYS"]
]

describe("module config slices", () => {
  it("read their documented defaults from an empty environment", async () => {
    const graph = await parse(GraphConfig.config, {})
    assert.deepStrictEqual(Exit.isSuccess(graph) ? graph.value : undefined, GraphConfig.defaults)
    const gather = await parse(GatherConfig.config, {})
    assert.deepStrictEqual(Exit.isSuccess(gather) ? gather.value : undefined, GatherConfig.defaults)
    const shard = await parse(ShardConfig.config, {})
    assert.deepStrictEqual(Exit.isSuccess(shard) ? shard.value : undefined, ShardConfig.defaults)
  })

  for (const [module, config, env, mentions] of cases) {
    it(`${module} refuses ${JSON.stringify(env)}`, async () => {
      const exit = await parse(config, env)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(JSON.stringify(exit), mentions)
    })
  }

  it("reads graph zones trimmed, in order", async () => {
    const exit = await parse(GraphConfig.config, { TESSERA_GRAPH_ZONES: " us-east-1a, us-east-1b ," })
    assert.deepStrictEqual(Exit.isSuccess(exit) ? exit.value.graphZones : [], ["us-east-1a", "us-east-1b"])
  })
})
