import { assert, describe, it } from "@effect/vitest"
import { pushDelta } from "./dedup.ts"
import { Outbox } from "./feed.ts"

const add = (outbox: Outbox, shard: number, from: number, to: number) => {
  for (let seq = from; seq <= to; seq++) pushDelta(outbox.fresh[shard], "m", seq, seq, 0, 1, 1)
}

describe("Outbox", () => {
  it("hands a shard its fresh copies and refills from an empty buffer", () => {
    const outbox = new Outbox(2, 100)
    add(outbox, 0, 1, 3)
    const out = outbox.take(0)
    assert.deepStrictEqual(out.seq, [1, 2, 3])
    assert.strictEqual(outbox.fresh[0].seq.length, 0)
    assert.strictEqual(outbox.take(1).seq.length, 0)
    add(outbox, 0, 4, 4)
    outbox.delivered(0)
    assert.deepStrictEqual(outbox.take(0).seq, [4])
    assert.strictEqual(outbox.dropped, 0)
  })

  it("sends the undelivered rest of a failed send again, before the copies that came meanwhile", () => {
    const outbox = new Outbox(1, 100)
    add(outbox, 0, 1, 6)
    const first = outbox.take(0)
    add(outbox, 0, 7, 8)
    // Rows 0..1 went out, the send of the rest failed.
    outbox.failed(0, 2)
    // The arrays a timed-out call may still hold are left alone.
    assert.deepStrictEqual(first.seq, [1, 2, 3, 4, 5, 6])
    assert.deepStrictEqual(outbox.take(0).seq, [3, 4, 5, 6, 7, 8])
    assert.strictEqual(outbox.backlog(0), 6)
    outbox.delivered(0)
    assert.strictEqual(outbox.backlog(0), 0)
  })

  it("holds at most max copies per shard, dropping the oldest (counted) but sending each market's newest dropped copy", () => {
    const outbox = new Outbox(2, 5)
    add(outbox, 0, 1, 8)
    pushDelta(outbox.fresh[0], "n", 1, 1, 0, 1, 1)
    add(outbox, 1, 1, 3)
    outbox.cap()
    assert.deepStrictEqual(outbox.fresh[0].seq, [5, 6, 7, 8, 1])
    assert.strictEqual(outbox.fresh[1].seq.length, 3)
    assert.strictEqual(outbox.dropped, 4)
    // Of m's dropped 1..4, seq 4 goes along: a market that went quiet still shows the deduplicator its hole.
    const out = outbox.take(0)
    assert.deepStrictEqual(out.seq, [5, 6, 7, 8, 1, 4])
    assert.deepStrictEqual(out.market, ["m", "m", "m", "m", "n", "m"])
    assert.strictEqual(out.qty.length, 6)
    outbox.failed(0, 0)
    // A send in flight holds 6: copies arriving meanwhile count against the same bound.
    add(outbox, 0, 9, 10)
    outbox.cap()
    assert.deepStrictEqual(outbox.fresh[0].seq, [])
    assert.strictEqual(outbox.backlog(0), 7)
    assert.deepStrictEqual(outbox.take(0).seq, [6, 7, 8, 1, 4, 10])
    assert.strictEqual(outbox.dropped, 7)
  })
})
