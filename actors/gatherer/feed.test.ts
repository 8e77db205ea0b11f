import { assert, describe, it } from "@effect/vitest"
import { emptyColumns } from "./dedup.ts"
import { epochSpan, FeedEpochs, feedCounters, parseFrame } from "./feed.ts"

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

describe("FeedEpochs", () => {
  const frame = (...d: ReadonlyArray<ReadonlyArray<unknown>>) => JSON.stringify({ type: "deltas", d })

  it("a reset marker moves a market's untagged deltas to its epoch; other markets keep theirs", () => {
    const batches = [emptyColumns(), emptyColumns()]
    const counters = feedCounters()
    const epochs = new FeedEpochs()
    epochs.newSession()
    parseFrame(frame(["m0", 7, 1, 0, 1, 1], ["m1", 3, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    parseFrame('{"type":"reset","market":"m0","epoch":1}', shardOf, batches, counters, epochs)
    parseFrame(frame(["m0", 1, 1, 0, 1, 1], ["m1", 4, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    assert.deepStrictEqual(batches[0].seq, [7, epochSpan + 1])
    assert.deepStrictEqual(batches[1].seq, [3, 4])
    assert.strictEqual(counters.resets, 1)
    // A marker without an epoch is the next one; one for an unknown market or a bad epoch is garbage.
    parseFrame('{"type":"reset","market":"m0"}', shardOf, batches, counters, epochs)
    parseFrame(frame(["m0", 1, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    assert.strictEqual(batches[0].seq[2], 2 * epochSpan + 1)
    parseFrame('{"type":"reset","market":"zz","epoch":1}', shardOf, batches, counters, epochs)
    parseFrame('{"type":"reset","market":"m1","epoch":1e9}', shardOf, batches, counters, epochs)
    assert.strictEqual(counters.garbage, 2)
    assert.strictEqual(epochs.epochOf("m1"), 0)
  })

  it("a seq that goes back in a fresh session is a reset (next epoch); a replay of recent seqs is not", () => {
    const batches = [emptyColumns(), emptyColumns()]
    const counters = feedCounters()
    const epochs = new FeedEpochs()
    epochs.newSession()
    parseFrame(frame(["m0", 5000, 1, 0, 1, 1], ["m1", 5000, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    epochs.newSession()
    // m0 restarts at 1 (the venue restarted), m1 replays a few recent seqs after a reconnect.
    parseFrame(frame(["m0", 1, 1, 0, 1, 1], ["m1", 4990, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    parseFrame(frame(["m0", 2, 1, 0, 1, 1], ["m1", 4991, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    assert.deepStrictEqual(batches[0].seq, [5000, epochSpan + 1, epochSpan + 2])
    assert.deepStrictEqual(batches[1].seq, [5000, 4990, 4991])
    assert.strictEqual(counters.regressions, 1)
    // Within one session a seq going back is a late copy, never a reset.
    parseFrame(frame(["m1", 1, 1, 0, 1, 1]), shardOf, batches, counters, epochs)
    assert.strictEqual(batches[1].seq[3], 1)
    assert.strictEqual(counters.regressions, 1)
  })
})
