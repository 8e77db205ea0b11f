import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema } from "effect"
import fc from "fast-check"
import * as Ids from "./Ids.ts"

/** Code units that stress the grammar: controls, DEL, C1, both surrogate halves, plain and astral characters. */
const unit = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.constantFrom("\u007f", "\u0080", "\u0085", "\u009f", "\u00a0", "\ud800", "\udbff", "\udc00", "\udfff"),
  fc.constantFrom("a", "Z", "0", "-", ":", "|", " ", "é", "€", "😀", "𝄞"),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
)
const hostileString = fc.string({ unit, maxLength: 80 })

const isControl = (char: string) => {
  const code = char.charCodeAt(0)
  return code < 0x20 || (code >= 0x7f && code <= 0x9f)
}
/** The grammar written independently of `Ids.problem`: per character, and the engine's own well-formedness. */
const inGrammar = (text: string, min: number, max: number) =>
  text.length >= min && text.length <= max && ![...text].some(isControl) && text.isWellFormed()

describe("Ids grammar", () => {
  it("accepts exactly the well-formed strings of bounded length without control characters", () => {
    const decode = Schema.decodeUnknownExit(Ids.Key)
    fc.assert(
      fc.property(hostileString, (text) => {
        assert.strictEqual(Exit.isSuccess(decode(text)), inGrammar(text, 1, Ids.maxKeyLength), JSON.stringify(text))
      }),
      { numRuns: 5000 }
    )
  })

  it("bounds ids at 256 and keys at 64 code units, and refuses non-strings", () => {
    assert.isTrue(Exit.isSuccess(Schema.decodeUnknownExit(Ids.Id)("x".repeat(256))))
    assert.isTrue(Exit.isFailure(Schema.decodeUnknownExit(Ids.Id)("x".repeat(257))))
    assert.isTrue(Exit.isSuccess(Schema.decodeUnknownExit(Ids.Key)("😀".repeat(32))))
    assert.isTrue(Exit.isFailure(Schema.decodeUnknownExit(Ids.Key)("😀".repeat(32).concat("x"))))
    assert.isTrue(Exit.isFailure(Schema.decodeUnknownExit(Ids.Key)("")))
    assert.isTrue(Exit.isSuccess(Schema.decodeUnknownExit(Ids.text({ minLength: 0, maxLength: 4 }))("")))
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        if (typeof value !== "string") assert.isTrue(Exit.isFailure(Schema.decodeUnknownExit(Ids.Id)(value)))
      })
    )
  })

  it("says why a string is refused", () => {
    assert.strictEqual(Ids.problem("ab\u0000c", 64), "has control character U+0000 at 2")
    assert.strictEqual(Ids.problem("a\ud83d", 64), "has lone surrogate U+D83D at 1")
    assert.strictEqual(Ids.problem("\udc00", 64), "has lone surrogate U+DC00 at 0")
    assert.strictEqual(Ids.problem("", 64), "is empty")
    assert.isUndefined(Ids.problem("BTC-USDT", 64))
  })
})
