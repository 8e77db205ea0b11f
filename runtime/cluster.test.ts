import { assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import {
  STANDBY_WEIGHT,
  shardingConfig,
  standbyShardGroups,
  standbyShardingConfig,
  ZONED_RUNNER_WEIGHT
} from "./cluster.ts"
import { defaults, type TesseraConfigShape } from "./config.ts"

const config = (options: Partial<TesseraConfigShape>): TesseraConfigShape => ({ ...defaults, ...options })
/** Zone groups as a module declares them (the graph's `graph-<zone>`). */
const groups = (zones: ReadonlyArray<string>) => zones.map((zone) => ({ group: `graph-${zone}`, zone }))

describe("sharding config with graph zones", () => {
  it("without zones: Effect's default group only, weight 1, no standby", () => {
    const runner = shardingConfig(config({ zone: Option.some("a") }), "runner")
    assert.deepStrictEqual(runner.availableShardGroups, ["default"])
    assert.deepStrictEqual(runner.assignedShardGroups, ["default"])
    assert.strictEqual(runner.runnerShardWeight, 1)
    assert.deepStrictEqual(standbyShardGroups(config({ zone: Option.some("a") }), []), [])
  })

  it("a zone-b runner serves default and graph-b at full weight; its standby the other zones at the least", () => {
    const zoned = config({ zone: Option.some("b"), runnerPort: 4000 })
    const abc = groups(["a", "b", "c"])
    const main = shardingConfig(zoned, "runner", abc)
    assert.deepStrictEqual(main.availableShardGroups, ["default", "graph-a", "graph-b", "graph-c"])
    assert.deepStrictEqual(main.assignedShardGroups, ["default", "graph-b"])
    assert.strictEqual(main.runnerShardWeight, ZONED_RUNNER_WEIGHT)
    const standby = standbyShardingConfig(zoned, abc)
    assert.deepStrictEqual(standby.availableShardGroups, main.availableShardGroups, "same lock numbering")
    assert.deepStrictEqual(standby.assignedShardGroups, ["graph-a", "graph-c"])
    assert.strictEqual(standby.runnerShardWeight, STANDBY_WEIGHT)
    assert.strictEqual(Option.getOrThrow(standby.runnerAddress!).port, 4001)
  })

  it("a runner outside the listed zones stands by for all of them; a single node serves every group", () => {
    const elsewhere = config({ zone: Option.some("z") })
    const ab = groups(["a", "b"])
    assert.deepStrictEqual(shardingConfig(elsewhere, "runner", ab).assignedShardGroups, ["default"])
    assert.deepStrictEqual(standbyShardGroups(elsewhere, ab), ["graph-a", "graph-b"])
    assert.deepStrictEqual(shardingConfig(elsewhere, "single", ab).assignedShardGroups, [
      "default",
      "graph-a",
      "graph-b"
    ])
  })
})
