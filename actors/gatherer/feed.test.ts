import { assert, describe, it } from "@effect/vitest"
import { emptyColumns } from "./dedup.ts"
import { feedCounters, parseFrame } from "./feed.ts"

const shardOf = new Map([
  ["m0", 0],
  ["m1", 1]
])

describe("parseFrame", () => {
  it("routes valid deltas to their deduplicator's batch", () => {
    const batches = [emptyColumns(), emptyColumns()]
    const counters = feedCounters()
    const taken = parseFrame(
      '{"type":"deltas","d":[["m0",1,1000,0,101.5,3],["m1",7,1001,1,99.25,0],["m0",2,1002,1,102,1]]}',
      shardOf,
      batches,
      counters
    )
    assert.strictEqual(taken, 3)
    assert.deepStrictEqual(batches[0].seq, [1, 2])
    assert.deepStrictEqual(batches[1].price, [99.25])
    assert.strictEqual(counters.garbage, 0)
  })

  it("counts garbage (invalid JSON, unknown market, negative or fractional seq, bad fields) and keeps the rest", () => {
    const batches = [emptyColumns(), emptyColumns()]
    const counters = feedCounters()
    assert.strictEqual(parseFrame("{not json", shardOf, batches, counters), 0)
    assert.strictEqual(parseFrame('{"type":"weird"}', shardOf, batches, counters), 0)
    assert.strictEqual(parseFrame('{"type":"subscribed","count":2}', shardOf, batches, counters), 0)
    const taken = parseFrame(
      JSON.stringify({
        type: "deltas",
        d: [
          ["zz", 1, 1, 0, 1, 1],
          ["m0", -5, 1, 0, 1, 1],
          ["m0", 1.5, 1, 0, 1, 1],
          ["m0", 3, 1, 2, 1, 1],
          ["m0", 4, 1, 0, "x", 1],
          "nope",
          ["m1", 9, 5, 1, 10, 2]
        ]
      }),
      shardOf,
      batches,
      counters
    )
    assert.strictEqual(taken, 1)
    assert.strictEqual(counters.garbage, 8)
    assert.deepStrictEqual(batches[1].seq, [9])
    assert.strictEqual(batches[0].seq.length, 0)
    assert.strictEqual(counters.received, 1)
  })
})
