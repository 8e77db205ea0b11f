import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { jsonPieces } from "./jsonPieces.ts"

describe("jsonPieces", () => {
  it("joins to JSON.stringify's text for any JSON value and slice", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 4 }), (value, slice) => {
        assert.strictEqual([...jsonPieces(value, slice)].join(""), JSON.stringify(value))
      }),
      { numRuns: 500 }
    )
  })

  it("leaves out properties without a JSON value, as JSON.stringify does", () => {
    const value = { a: undefined, b: [1, 2, 3], c: () => 1, d: { e: [undefined, 4, 5] } }
    assert.strictEqual([...jsonPieces(value, 1)].join(""), JSON.stringify(value))
  })

  it("cuts a large array nested in objects into pieces of at most `slice` elements", () => {
    const orders = Array.from({ length: 10_000 }, (_, i) => [i, `a${i % 7}`, i % 2, 100 + i, 5, 0, 0])
    const value = { version: 2, book: { config: { tick: "0.5" }, orders, finished: [] }, open: [] }
    const pieces = [...jsonPieces(value, 512)]
    assert.strictEqual(pieces.join(""), JSON.stringify(value))
    assert.isAtLeast(pieces.length, Math.ceil(orders.length / 512))
    const longest = Math.max(...pieces.map((p) => p.length))
    let bound = 0
    for (let from = 0; from < orders.length; from += 512) {
      bound = Math.max(bound, JSON.stringify(orders.slice(from, from + 512)).length)
    }
    assert.isAtMost(longest, bound, "no piece is longer than one slice's text")
  })
})
