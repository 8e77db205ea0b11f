import { assert, describe, it } from "@effect/vitest"
import {
  decodeSnapshot,
  encodeSnapshot,
  forwardMarker,
  groupByPartition,
  hashTagRule,
  isJsonObject,
  labelProblem,
  labelPropagation,
  MAX_PROPERTIES_DEPTH,
  noPlacementRule,
  parseEdgeMember,
  parseForwardMarker,
  parsePlacementRule,
  partitionKeys,
  partitionOf,
  partitionShardGroup,
  placementKeyProblem,
  placementProblem,
  preferredZone,
  prefixRule,
  snapshotJson,
  utf8Length,
  vertexIdProblem,
  vertexPartition
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

  it("encodes a snapshot in pieces of a few vertices into the same JSON as at once", () => {
    const vertex = (i: number): [string, string, Array<string>] => [`v"${i}`, `{"n":${i}}`, [`k|w${i}`, "k|x"]]
    for (const count of [0, 1, 2, 5]) {
      const snapshot = {
        format: 1 as const,
        partition: 7,
        version: 9,
        vertices: Array.from({ length: count }, (_, i) => vertex(i))
      }
      const text = [...snapshotJson(snapshot, 2)].join("")
      assert.strictEqual(text, new TextDecoder().decode(encodeSnapshot(snapshot)), `${count} vertices`)
      assert.deepStrictEqual(decodeSnapshot(new TextEncoder().encode(text)), snapshot)
    }
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

describe("placement keys", () => {
  it("takes Redis hash tags: the first {...} when not empty, else the whole id", () => {
    assert.strictEqual(hashTagRule("{acme}alice"), "acme")
    assert.strictEqual(hashTagRule("user:{acme}:alice"), "acme")
    assert.strictEqual(hashTagRule("{a}{b}"), "a")
    assert.strictEqual(hashTagRule("x{y}z}"), "y")
    assert.isUndefined(hashTagRule("alice"))
    assert.isUndefined(hashTagRule("{}alice"))
    assert.isUndefined(hashTagRule("{alice"))
    assert.isUndefined(hashTagRule("}a{"))
    assert.strictEqual(vertexPartition("{acme}alice", 64), partitionOf("acme", 64))
    assert.strictEqual(vertexPartition("{acme}bob", 64), vertexPartition("{acme}alice", 64))
    assert.strictEqual(vertexPartition("alice", 64), partitionOf("alice", 64))
    assert.strictEqual(vertexPartition("{}alice", 64), partitionOf("{}alice", 64))
    assert.strictEqual(vertexPartition("{acme}alice", 64, noPlacementRule), partitionOf("{acme}alice", 64))
  })

  it("parses the deployment rule: tag, none, prefix:<separator>", () => {
    assert.strictEqual(parsePlacementRule("tag"), hashTagRule)
    assert.strictEqual(parsePlacementRule("none"), noPlacementRule)
    const prefix = parsePlacementRule("prefix:/")
    assert.isDefined(prefix)
    assert.strictEqual(prefix?.("acme/alice/x"), "acme")
    assert.isUndefined(prefix?.("/alice"))
    assert.isUndefined(prefix?.("alice"))
    assert.strictEqual(prefixRule("::")("t1::v"), "t1")
    for (const bad of ["", "tags", "prefix:", "hash"]) assert.isUndefined(parsePlacementRule(bad), bad)
  })

  it("holds keys to the grammar: 1-64 of A-Z a-z 0-9 . _ - : / @ + =", () => {
    for (const good of ["a", "acme", "tenant-42", "org.eu/team_7", "a@b.c", "x+y=z", "k".repeat(64)]) {
      assert.isUndefined(placementKeyProblem(good), good)
    }
    for (const bad of ["", "k".repeat(65), "two words", "tab\t", "nul\u0000", "é", "{", "}", "semi;", "日本"]) {
      assert.isDefined(placementKeyProblem(bad), JSON.stringify(bad))
    }
    assert.isUndefined(placementProblem("alice"))
    assert.isUndefined(placementProblem("{ok}alice"))
    assert.include(placementProblem("{not ok}alice") ?? "", "at 3")
  })

  it("groups ids by their placement partition", () => {
    const ids = ["{t}a", "{t}b", "c", "{t}d"]
    const groups = groupByPartition(ids, 64)
    const group = groups.get(partitionOf("t", 64))
    assert.includeMembers(group?.ids ?? [], ["{t}a", "{t}b", "{t}d"])
  })

  it("forward markers never read as properties and name their partition", () => {
    assert.strictEqual(parseForwardMarker(forwardMarker(17)), 17)
    assert.strictEqual(parseForwardMarker(forwardMarker(0)), 0)
    assert.isUndefined(parseForwardMarker("{}"))
    assert.isUndefined(parseForwardMarker('{"a":"@1"}'))
    assert.isUndefined(parseForwardMarker("@x"))
    assert.isUndefined(parseForwardMarker("@-1"))
  })
})

describe("labelPropagation", () => {
  /** Cliques of `size` vertices, clique c's vertex 0 linked to clique c+1's vertex 0. */
  const cliques = (count: number, size: number) => {
    const adjacency: Array<Array<number>> = Array.from({ length: count * size }, () => [])
    const link = (a: number, b: number) => {
      adjacency[a].push(b)
      adjacency[b].push(a)
    }
    for (let c = 0; c < count; c++) {
      for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) link(c * size + i, c * size + j)
      if (c + 1 < count) link(c * size, (c + 1) * size)
    }
    return adjacency
  }

  it("finds planted communities, converges, and is deterministic for a seed", () => {
    const adjacency = cliques(4, 6)
    for (const seed of [1, 2, 3, 42]) {
      const result = labelPropagation(adjacency, { iterations: 20, seed })
      assert.isTrue(result.converged)
      for (let c = 0; c < 4; c++) {
        const labels = new Set(Array.from({ length: 6 }, (_, i) => result.labels[c * 6 + i]))
        assert.strictEqual(labels.size, 1, `seed ${seed} clique ${c}`)
      }
      assert.strictEqual(new Set(result.labels).size, 4, `seed ${seed}`)
      assert.deepStrictEqual(labelPropagation(adjacency, { iterations: 20, seed }).labels, result.labels)
    }
  })

  it("keeps isolated vertices alone, stops at the iteration bound, settles a pair on one label", () => {
    const isolated = labelPropagation([[], [], []], { iterations: 5, seed: 9 })
    assert.deepStrictEqual([...isolated.labels], [0, 1, 2])
    assert.isTrue(isolated.converged)
    const bounded = labelPropagation(cliques(3, 5), { iterations: 1, seed: 2 })
    assert.strictEqual(bounded.iterations, 1)
    // A pair: the first one visited takes the other's label, which the other then keeps (its own is among the best).
    const pair = labelPropagation([[1], [0]], { iterations: 10, seed: 3 })
    assert.strictEqual(pair.labels[0], pair.labels[1])
    assert.isTrue(pair.converged)
  })
})
