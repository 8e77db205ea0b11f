import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit } from "effect"
import { emptyColumns } from "./dedup.ts"
import { epochSpan, escapeVenue, feedCounters, parseFrame } from "./feed.ts"
import { fetchSnapshot, type SnapshotError } from "./snapshot.ts"
import { startVenue } from "./venue.ts"

const limits = { timeout: Duration.millis(400), maxBytes: 256 * 1024 }

const failureOf = (exit: Exit.Exit<unknown, SnapshotError>) => {
  assert.isTrue(Exit.isFailure(exit), "the fetch failed")
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.isDefined(error, "with a typed failure")
  return (error as unknown as { error: SnapshotError }).error
}

describe("venue snapshots (the simulator's real HTTP server)", () => {
  it.live("a valid snapshot is decoded with stored seqs; 503, hang, oversize and firstSeq 1e15 are typed errors", () =>
    Effect.gen(function* () {
      const venue = yield* Effect.acquireRelease(
        Effect.promise(() => startVenue({ markets: 4, rate: 400, seed: 5 })),
        (v) => Effect.promise(() => v.close())
      )
      yield* Effect.sleep("300 millis")
      venue.pause(true)
      const last = venue.lastSeqs()[1]
      const ok = yield* fetchSnapshot(venue.httpUrl, "m1", 1, limits)
      assert.strictEqual(ok.firstSeq, 1)
      assert.strictEqual(ok.deltas.seq.length, last)
      assert.deepStrictEqual(ok.deltas.seq.slice(0, 3), [1, 2, 3])

      venue.setSnapshotFault("503")
      assert.strictEqual(failureOf(yield* Effect.exit(fetchSnapshot(venue.httpUrl, "m1", 1, limits))).reason, "http")
      venue.setSnapshotFault("timeout")
      const started = Date.now()
      assert.strictEqual(failureOf(yield* Effect.exit(fetchSnapshot(venue.httpUrl, "m1", 1, limits))).reason, "timeout")
      assert.isBelow(Date.now() - started, 5000, "the deadline ends a hung request")
      venue.setSnapshotFault("oversize")
      assert.strictEqual(
        failureOf(yield* Effect.exit(fetchSnapshot(venue.httpUrl, "m1", 1, limits))).reason,
        "oversize"
      )
      venue.setSnapshotFault("invalid")
      const invalid = failureOf(yield* Effect.exit(fetchSnapshot(venue.httpUrl, "m1", 1, limits)))
      assert.strictEqual(invalid.reason, "invalid")
      assert.notInclude(invalid.message, "\n")

      // After a reset the venue answers the new epoch, in stored seqs above 2^40.
      venue.setSnapshotFault("none")
      venue.resetMarkets([1])
      venue.pause(false)
      yield* Effect.sleep("300 millis")
      venue.pause(true)
      const reset = yield* fetchSnapshot(venue.httpUrl, "m1", last + 1, limits)
      assert.strictEqual(reset.epoch, 1)
      assert.strictEqual(reset.firstSeq, epochSpan + 1)
      assert.strictEqual(reset.deltas.seq.length, venue.lastSeqs()[1])
    }).pipe(Effect.scoped)
  )
})

describe("venue frames", () => {
  const shardOf = new Map([
    ["m0", 0],
    ["m1", 0]
  ])

  it("refuses out-of-range seqs and epochs (they would poison the window) and counts garbage per frame", () => {
    const batches = [emptyColumns()]
    const counters = feedCounters()
    parseFrame(
      JSON.stringify({
        type: "deltas",
        d: [
          ["m0", 1e15, 1, 0, 1, 1],
          ["m0", 2 ** 40, 1, 0, 1, 1],
          ["m0", 3, 1, 0, 1, 1, 9000]
        ]
      }),
      shardOf,
      batches,
      counters
    )
    assert.strictEqual(batches[0].seq.length, 0)
    assert.strictEqual(counters.garbage, 3)
    assert.strictEqual(counters.garbageFrames, 1, "one frame, however many bad deltas")
    parseFrame("{not json", shardOf, batches, counters)
    parseFrame('{"type":"deltas","d":[["m1",4,1,0,1,1,2]]}', shardOf, batches, counters)
    assert.strictEqual(counters.garbageFrames, 2)
    assert.deepStrictEqual(batches[0].seq, [2 * epochSpan + 4], "a delta of epoch 2 gets its stored seq")
    parseFrame('{"type":"reset","market":"m1","epoch":3}', shardOf, batches, counters)
    assert.strictEqual(counters.resets, 1)
  })

  it("keeps venue text out of log structure: escaped (no newline or control character) and capped", () => {
    const counters = feedCounters()
    const forged = `oops\n2026-12-07T06:00:00.000Z ERROR (#1): forged \u2028${"x".repeat(5000)}\u001b[31m`
    parseFrame(forged, new Map(), [], counters)
    for (const c of ["\n", "\r", "\u2028", "\u2029", "\u001b"]) assert.notInclude(counters.lastGarbage, c)
    assert.include(counters.lastGarbage, "\\n2026-12-07")
    assert.isBelow(counters.lastGarbage.length, 300)
    parseFrame(JSON.stringify({ type: "deltas", d: [["evil\nERROR forged", 1, 1, 0, 1, 1]] }), new Map(), [], counters)
    assert.notInclude(counters.lastGarbage, "\n")
    assert.strictEqual(escapeVenue("a\u2029b"), '"a\\u2029b"')
  })
})
