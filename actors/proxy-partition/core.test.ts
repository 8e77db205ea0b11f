import { assert, describe, it } from "@effect/vitest"
import {
  decodeSnapshot,
  encodeSnapshot,
  groupByPartition,
  isJsonObject,
  labelProblem,
  MAX_PROPERTIES_DEPTH,
  parseEdgeMember,
  partitionKeys,
  partitionOf,
  partitionShardGroup,
  preferredZone,
  utf8Length,
  vertexIdProblem
} from "./core.ts"

/** Reference FNV-1a over TextEncoder bytes, to check the allocation-free UTF-8 walk. */
const reference = (id: string, partitions: number) => {
  let hash = 0x811c9dc5
  for (const byte of new TextEncoder().encode(id)) hash = Math.imul(hash ^ byte, 0x01000193)
  return (hash >>> 0) % partitions
}

describe("partitionOf", () => {
  it("is FNV-1a 32 over UTF-8: fixed vectors never change", () => {
    // FNV-1a("") = 0x811c9dc5, FNV-1a("a") = 0xe40c292c, FNV-1a("foobar") = 0xbf9cf968
    assert.strictEqual(partitionOf("", 2 ** 32), 0x811c9dc5)
    assert.strictEqual(partitionOf("a", 2 ** 32), 0xe40c292c)
    assert.strictEqual(partitionOf("foobar", 2 ** 32), 0xbf9cf968)
    assert.strictEqual(partitionOf("foobar", 64), 0xbf9cf968 % 64)
  })

  it("agrees with a TextEncoder reference on ASCII, 2/3/4-byte and lone-surrogate ids", () => {
    const samples = ["alice", "bob-42", "é", "ünïcødé", "日本語", "emoji-😀-x", "\ud800lone", "x\udc00", "a😀"]
    for (let i = 0; i < 500; i++) {
      let s = ""
      for (let j = 0; j < 1 + (i % 12); j++) s += String.fromCharCode((i * 7919 + j * 104729) % 0xffff)
      samples.push(s)
    }
    for (const id of samples) {
      for (const partitions of [1, 7, 64, 1024])
        assert.strictEqual(partitionOf(id, partitions), reference(id, partitions), id)
    }
  })

  it("spreads ids over partitions", () => {
    const counts = new Array(64).fill(0)
    for (let i = 0; i < 64_000; i++) counts[partitionOf(`v${i}`, 64)]++
    assert.isTrue(Math.min(...counts) > 800 && Math.max(...counts) < 1200, counts.join(","))
  })

  it("groups ids by partition keeping input positions", () => {
    const ids = ["a", "b", "c", "d", "e", "a"]
    const groups = groupByPartition(ids, 4)
    const seen: Array<number> = []
    for (const [p, group] of groups) {
      group.ids.forEach((id, k) => {
        assert.strictEqual(partitionOf(id, 4), p)
        assert.strictEqual(ids[group.positions[k]], id)
        seen.push(group.positions[k])
      })
    }
    assert.deepStrictEqual(
      seen.sort((x, y) => x - y),
      [0, 1, 2, 3, 4, 5]
    )
  })
})

describe("validation and layout", () => {
  it("refuses empty, long and control-character ids and bad labels", () => {
    assert.isUndefined(vertexIdProblem("alice|x"))
    assert.isDefined(vertexIdProblem(""))
    assert.isDefined(vertexIdProblem("x".repeat(257)))
    assert.isDefined(vertexIdProblem("a\nb"))
    assert.isUndefined(labelProblem("knows"))
    assert.isDefined(labelProblem("a|b"))
    assert.isDefined(labelProblem(""))
  })

  it("measures UTF-8 like TextEncoder", () => {
    for (const s of ["", "abc", "é", "日本", "😀", "\ud800", "a\udc00b"]) {
      assert.strictEqual(utf8Length(s), new TextEncoder().encode(s).length, s)
    }
  })

  it("keeps a partition's keys under one hash tag and splits edge members at the first bar", () => {
    const keys = partitionKeys("g", 12)
    assert.strictEqual(keys.vertex("a"), "g:{12}:v:a")
    assert.strictEqual(keys.out("a"), "g:{12}:o:a")
    assert.strictEqual(keys.ids, "g:{12}:ids")
    assert.deepStrictEqual(parseEdgeMember("knows|x|y"), { label: "knows", id: "x|y" })
  })

  it("round-trips snapshots and rejects other bytes", () => {
    const snapshot = {
      format: 1 as const,
      partition: 3,
      version: 2,
      vertices: [["a", '{"n":1}', ["k|b"]]] as Array<[string, string, Array<string>]>
    }
    assert.deepStrictEqual(decodeSnapshot(encodeSnapshot(snapshot)), snapshot)
    assert.throws(() => decodeSnapshot(new TextEncoder().encode('{"format":2}')))
  })
})

describe("zone placement hints", () => {
  it("partition p prefers zones[p mod n]; no zones, no preference", () => {
    const zones = ["a", "b", "c"]
    assert.deepStrictEqual(
      Array.from({ length: 7 }, (_, p) => preferredZone(p, zones)),
      ["a", "b", "c", "a", "b", "c", "a"]
    )
    assert.isUndefined(preferredZone(5, []))
  })

  it("places a partition entity in its zone's shard group, anything else in default", () => {
    const zones = ["us-east-1a", "us-east-1b"]
    assert.strictEqual(partitionShardGroup("4", 64, zones), "graph-us-east-1a")
    assert.strictEqual(partitionShardGroup("63", 64, zones), "graph-us-east-1b")
    assert.strictEqual(partitionShardGroup("64", 64, zones), "default", "not a partition of this cluster")
    assert.strictEqual(partitionShardGroup("x1", 64, zones), "default")
    assert.strictEqual(partitionShardGroup("4", 64, []), "default", "no zones: Effect's default group")
    // Zone groups sort after `default`, so adding zones keeps the default group's shard lock numbers.
    assert.isTrue(["graph-0", "graph-A", "graph-a"].every((group) => "default" < group))
  })
})

describe("isJsonObject (the Properties schema check)", () => {
  it("accepts plain objects of JSON values, nested", () => {
    assert.isTrue(isJsonObject({}))
    assert.isTrue(isJsonObject({ a: 1, b: "x", c: null, d: true, e: [1, "2", { f: [null] }], g: { h: { i: -0.5 } } }))
    assert.isTrue(isJsonObject(Object.assign(Object.create(null), { a: 1 })))
    assert.isTrue(isJsonObject(JSON.parse('{"deep":[[[[{"x":1}]]]]}')))
  })

  it("refuses non-objects, non-JSON leaves, class instances, cycles and runaway depth", () => {
    for (const value of [null, undefined, 1, "x", [], [{}], true]) assert.isFalse(isJsonObject(value), String(value))
    assert.isFalse(isJsonObject({ a: undefined }))
    assert.isFalse(isJsonObject({ a: Number.NaN }))
    assert.isFalse(isJsonObject({ a: Number.POSITIVE_INFINITY }))
    assert.isFalse(isJsonObject({ a: () => 1 }))
    assert.isFalse(isJsonObject({ a: 1n }))
    assert.isFalse(isJsonObject({ a: new Date(0) }))
    assert.isFalse(isJsonObject({ a: [1, new Map()] }))
    assert.isFalse(isJsonObject({ a: Symbol("s") }))
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    assert.isFalse(isJsonObject(cyclic))
    let deep: unknown = 1
    for (let i = 0; i < MAX_PROPERTIES_DEPTH; i++) deep = { d: deep }
    assert.isTrue(isJsonObject(deep))
    assert.isFalse(isJsonObject({ d: deep }))
  })
})
