import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { DedupWindow, type DeltaColumns, emptyColumns, pushDelta, type SnapshotRequest } from "./dedup.ts"

const offerSeq = (w: DedupWindow, out: DeltaColumns, now: number, market: string, seq: number) =>
  w.offer(out, now, market, seq, 1000 + seq, seq % 2, 100 + seq, seq)

const snapshotFrom = (fromSeq: number, toSeq: number): DeltaColumns => {
  const cols = emptyColumns()
  for (let s = fromSeq; s <= toSeq; s++) pushDelta(cols, "m", s, 1000 + s, s % 2, 100 + s, s)
  return cols
}

describe("DedupWindow", () => {
  it("keeps the first copy of each seq and counts duplicates", () => {
    const w = new DedupWindow()
    const out = emptyColumns()
    for (const seq of [1, 1, 2, 2, 2, 3]) offerSeq(w, out, 0, "m", seq)
    assert.deepStrictEqual(out.seq, [1, 2, 3])
    assert.deepStrictEqual(out.ts, [1001, 1002, 1003])
    assert.strictEqual(w.counters.duplicates, 3)
    assert.strictEqual(w.counters.accepted, 3)
  })

  it("emits reordered copies in seq order once the hole fills", () => {
    const w = new DedupWindow()
    const out = emptyColumns()
    w.init("m", 0)
    for (const seq of [1, 3, 4, 2, 5]) offerSeq(w, out, 0, "m", seq)
    assert.deepStrictEqual(out.seq, [1, 2, 3, 4, 5])
    assert.strictEqual(w.openHoles, 0)
  })

  it("resumes after the last written seq and treats older copies as duplicates", () => {
    const w = new DedupWindow()
    const out = emptyColumns()
    w.init("m", 10)
    for (const seq of [9, 10, 11, 12]) offerSeq(w, out, 0, "m", seq)
    assert.deepStrictEqual(out.seq, [11, 12])
    assert.strictEqual(w.counters.duplicates, 2)
  })

  it("requests a snapshot only after the gap deadline, once, and heals from it", () => {
    const w = new DedupWindow({ gapDeadlineMs: 100, snapshotRetryMs: 1000 })
    const out = emptyColumns()
    w.init("m", 0)
    offerSeq(w, out, 0, "m", 1)
    offerSeq(w, out, 10, "m", 4)
    offerSeq(w, out, 20, "m", 5)
    const requests: Array<SnapshotRequest> = []
    w.due(50, requests)
    assert.strictEqual(requests.length, 0)
    w.due(111, requests)
    assert.deepStrictEqual(requests, [{ market: "m", fromSeq: 2 }])
    w.due(200, requests)
    assert.strictEqual(requests.length, 1, "no second request while one is in flight")
    w.applySnapshot(out, 250, "m", 2, snapshotFrom(2, 6))
    assert.deepStrictEqual(out.seq, [1, 2, 3, 4, 5, 6])
    assert.strictEqual(w.counters.healed, 3, "2, 3 and 6 came from the snapshot only")
    assert.strictEqual(w.counters.gaps, 1)
    assert.strictEqual(w.openHoles, 0)
    offerSeq(w, out, 300, "m", 6)
    offerSeq(w, out, 300, "m", 7)
    assert.deepStrictEqual(out.seq, [1, 2, 3, 4, 5, 6, 7])
  })

  it("asks again when a snapshot does not arrive in time", () => {
    const w = new DedupWindow({ gapDeadlineMs: 10, snapshotRetryMs: 100 })
    const out = emptyColumns()
    w.init("m", 0)
    offerSeq(w, out, 0, "m", 3)
    const requests: Array<SnapshotRequest> = []
    w.due(20, requests)
    w.due(90, requests)
    w.due(130, requests)
    assert.deepStrictEqual(
      requests.map((r) => r.fromSeq),
      [1, 1]
    )
  })

  it("counts seqs the venue no longer retains as skipped and moves on", () => {
    const w = new DedupWindow({ gapDeadlineMs: 0 })
    const out = emptyColumns()
    w.init("m", 0)
    offerSeq(w, out, 0, "m", 1)
    offerSeq(w, out, 0, "m", 9)
    w.applySnapshot(out, 1, "m", 5, snapshotFrom(5, 10))
    assert.deepStrictEqual(out.seq, [1, 5, 6, 7, 8, 9, 10])
    assert.strictEqual(w.counters.skipped, 3)
  })

  it("bounds what it holds: copies beyond the window make the gap due at once", () => {
    const w = new DedupWindow({ window: 8, gapDeadlineMs: 1000 })
    const out = emptyColumns()
    w.init("m", 0)
    offerSeq(w, out, 0, "m", 20)
    assert.strictEqual(w.counters.overflow, 1)
    const requests: Array<SnapshotRequest> = []
    w.due(1, requests)
    assert.deepStrictEqual(requests, [{ market: "m", fromSeq: 1 }])
  })

  it("remembers a copy dropped for the window: the hole stays open after the seqs below it arrive", () => {
    const w = new DedupWindow({ window: 2, gapDeadlineMs: 1000 })
    const out = emptyColumns()
    w.init("m", 0)
    offerSeq(w, out, 0, "m", 1)
    offerSeq(w, out, 0, "m", 5)
    for (const seq of [2, 3, 4]) offerSeq(w, out, 0, "m", seq)
    assert.deepStrictEqual(out.seq, [1, 2, 3, 4])
    assert.strictEqual(w.openHoles, 1, "seq 5 was seen but not emitted")
    const requests: Array<SnapshotRequest> = []
    w.due(2000, requests)
    assert.deepStrictEqual(requests, [{ market: "m", fromSeq: 5 }])
  })

  it("property: R replicas with random drops, duplicates and reorders yield every delivered seq exactly once", () => {
    const replica = fc.record({
      drops: fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
      dups: fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
      keys: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 120, maxLength: 120 })
    })
    fc.assert(
      fc.property(
        fc.array(replica, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 2, max: 100 }),
        (replicas, count, window) => {
          const w = new DedupWindow({ window, gapDeadlineMs: 1_000_000 })
          const out = emptyColumns()
          w.init("m", 0)
          // Each replica delivers its copies in its own order; replicas interleave.
          const streams = replicas.map((r) => {
            const copies: Array<{ seq: number; key: number }> = []
            for (let s = 1; s <= count; s++) {
              if (r.drops[s - 1]) continue
              copies.push({ seq: s, key: s + r.keys[2 * (s - 1)] * 5 })
              if (r.dups[s - 1]) copies.push({ seq: s, key: s + r.keys[2 * (s - 1) + 1] * 5 })
            }
            return copies.sort((a, b) => a.key - b.key).map((c) => c.seq)
          })
          const delivered = new Set(streams.flat())
          const cursors = streams.map(() => 0)
          let remaining = streams.reduce((n, s) => n + s.length, 0)
          let turn = 0
          while (remaining > 0) {
            const i = turn++ % streams.length
            if (cursors[i] < streams[i].length) {
              offerSeq(w, out, 0, "m", streams[i][cursors[i]++])
              remaining--
            }
          }
          // Heal whatever no replica (or the window) let through, as the venue would.
          const requests: Array<SnapshotRequest> = []
          w.due(2_000_000, requests)
          for (const r of requests) w.applySnapshot(out, 2_000_001, "m", r.fromSeq, snapshotFrom(r.fromSeq, count))
          const seen = new Set<number>()
          for (const s of out.seq) {
            assert.isFalse(seen.has(s), `seq ${s} emitted twice`)
            seen.add(s)
          }
          for (const s of delivered) assert.isTrue(seen.has(s), `delivered seq ${s} missing`)
          // Emitted in order, and gapless once healed.
          assert.deepStrictEqual(
            out.seq,
            Array.from({ length: out.seq.length }, (_, k) => k + 1)
          )
          assert.isTrue(out.seq.length >= Math.max(0, ...delivered))
        }
      ),
      { numRuns: 1000 }
    )
  })
})
