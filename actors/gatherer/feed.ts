/**
 * Venue frames to per-deduplicator batches (pure, no Effect). The boundary check for what a venue sends:
 * invalid JSON, unknown markets, bad seqs or fields are counted as garbage and skipped, never thrown.
 */
import { type DeltaColumns, pushDelta } from "./dedup.ts"

export interface FeedCounters {
  /** Valid delta copies taken from frames. */
  received: number
  /** Frames or deltas rejected (invalid JSON, unknown market, negative or fractional seq, bad fields). */
  garbage: number
  /** The last rejection, for the log. */
  lastGarbage: string
}

export const feedCounters = (): FeedCounters => ({ received: 0, garbage: 0, lastGarbage: "" })

/**
 * Parses one text frame; each valid delta is appended to `batches[shardOf.get(market)]`. Control frames
 * (`subscribed`, `error`) are ignored. Returns how many deltas were taken.
 */
export const parseFrame = (
  text: string,
  shardOf: ReadonlyMap<string, number>,
  batches: ReadonlyArray<DeltaColumns>,
  counters: FeedCounters
): number => {
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    counters.garbage++
    counters.lastGarbage = `invalid JSON: ${text.slice(0, 80)}`
    return 0
  }
  if (typeof frame !== "object" || frame === null) return reject(counters, "not an object")
  const type = (frame as { type?: unknown }).type
  if (type !== "deltas") {
    if (type === "subscribed" || type === "unsubscribed" || type === "error") return 0
    return reject(counters, `unknown frame type ${String(type).slice(0, 40)}`)
  }
  const deltas = (frame as { d?: unknown }).d
  if (!Array.isArray(deltas)) return reject(counters, "deltas without d")
  let taken = 0
  for (let i = 0; i < deltas.length; i++) {
    const d = deltas[i]
    if (!Array.isArray(d) || d.length !== 6) {
      reject(counters, "delta is not [market, seq, ts, side, price, qty]")
      continue
    }
    const market = d[0]
    const shard = typeof market === "string" ? shardOf.get(market) : undefined
    if (shard === undefined) {
      reject(counters, `unknown market ${String(market).slice(0, 40)}`)
      continue
    }
    const seq = d[1]
    const ts = d[2]
    const side = d[3]
    const price = d[4]
    const qty = d[5]
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
      reject(counters, `bad seq ${String(seq).slice(0, 40)} for ${market}`)
      continue
    }
    if (
      typeof ts !== "number" ||
      !Number.isFinite(ts) ||
      (side !== 0 && side !== 1) ||
      typeof price !== "number" ||
      !Number.isFinite(price) ||
      typeof qty !== "number" ||
      !Number.isFinite(qty) ||
      qty < 0
    ) {
      reject(counters, `bad fields for ${market}/${seq}`)
      continue
    }
    pushDelta(batches[shard], market, seq, ts, side, price, qty)
    taken++
  }
  counters.received += taken
  return taken
}

const reject = (counters: FeedCounters, why: string): number => {
  counters.garbage++
  counters.lastGarbage = why
  return 0
}
