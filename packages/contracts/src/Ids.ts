/**
 * The grammar of every id and key on the wire (entity ids, accounts, idempotency keys, vertex ids, labels, property
 * keys): 1 to `maxLength` UTF-16 code units of well-formed Unicode with no control character.
 *
 * Refused: C0 controls U+0000-U+001F, DEL U+007F, C1 controls U+0080-U+009F and lone surrogates. U+0000 breaks
 * PostgreSQL text (`json_populate_recordset` refuses it) and is the separator of composed keys; the others break
 * logs, terminals, UTF-8 encoders and Valkey key layouts. Anything else, spaces and any script included, is allowed.
 *
 * Use `Ids.Id` and `Ids.Key` (or `Ids.text({ maxLength })`) in protocol schemas: a value outside the grammar fails the
 * RPC's payload decoding, so the gateway answers it with the RPC's schema error and no entity sees it.
 */
import { Schema } from "effect"

/** Longest id (entity ids, vertex ids, symbols), in UTF-16 code units. */
export const maxIdLength = 256
/** Longest key (accounts, idempotency keys, labels, property keys), in UTF-16 code units. */
export const maxKeyLength = 64

/**
 * Why `text` is outside the grammar (too short, too long, a control character or lone surrogate at an index), or
 * undefined if it is inside. One pass over the code units, no allocation on success.
 */
export const problem = (text: string, maxLength: number, minLength = 1): string | undefined => {
  const n = text.length
  if (n < minLength) return n === 0 ? "is empty" : `is shorter than ${minLength} characters`
  if (n > maxLength) return `is longer than ${maxLength} characters`
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return `has control character U+${hex(c)} at ${i}`
    if (c >= 0xd800 && c <= 0xdfff) {
      const low = c <= 0xdbff && i + 1 < n ? text.charCodeAt(i + 1) : 0
      if (low < 0xdc00 || low > 0xdfff) return `has lone surrogate U+${hex(c)} at ${i}`
      i++
    }
  }
  return undefined
}

const hex = (code: number) => code.toString(16).toUpperCase().padStart(4, "0")

/** The grammar as a schema check on a string. */
export const isText = (options: { readonly maxLength: number; readonly minLength?: number | undefined }) => {
  const min = options.minLength ?? 1
  const max = options.maxLength
  return Schema.makeFilter<string>((text) => problem(text, max, min), {
    expected: `${min}-${max} characters without control characters or lone surrogates`
  })
}

/** A string in the grammar, `minLength` (default 1) to `maxLength` code units. */
export const text = (options: { readonly maxLength: number; readonly minLength?: number | undefined }) =>
  Schema.String.check(isText(options))

/** An id: 1-256 code units in the grammar. */
export const Id = text({ maxLength: maxIdLength })

/** A key: 1-64 code units in the grammar. */
export const Key = text({ maxLength: maxKeyLength })
