/**
 * Venue frames to per-deduplicator batches (pure, no Effect). The boundary check for what a venue sends:
 * invalid JSON, unknown markets, bad seqs or fields are counted as garbage and skipped, never thrown.
 *
 * Sequence resets: the venue numbers each market's deltas per epoch (a delta's optional 7th element, 0 when absent)
 * and restarts at seq 1 in a new epoch after a reset (announced with a `reset` frame). Tessera stores
 * `epoch * 2^40 + seq`, so a market's stored seqs keep rising across resets: the deduplicator sees a reset as a jump
 * and resnapshots the new epoch at once, and rows of the old epoch never collide with the new ones.
 *
 * A venue that tags no delta is followed too (`FeedEpochs`, per connection): a `reset` marker sets the market's epoch
 * for its later untagged deltas, and a market whose seq goes back in a fresh session (a venue restarted without a
 * word) moves to the next epoch by itself.
 */
import { type DeltaColumns, pushDelta } from "./dedup.ts"

/** Venue seqs per epoch are below 2^40; epochs up to 8191 keep stored seqs below 2^53 (exact doubles). */
export const epochSpan = 2 ** 40
export const maxEpoch = 8191
export const storedSeq = (epoch: number, seq: number): number => epoch * epochSpan + seq
export const epochOf = (stored: number): number => Math.floor(stored / epochSpan)

/** Venue text as it may go into a log line: JSON-escaped (no newline or control character survives) and capped. */
export const escapeVenue = (value: unknown, max = 200): string => {
  const text = typeof value === "string" ? value : String(value)
  const cut = text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text
  // JSON.stringify leaves U+2028/U+2029 alone, and some log viewers break lines on them.
  return JSON.stringify(cut).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`)
}

/** A fresh session's first seq this far below the last one seen is a reset, not a replay of recent deltas. */
export const replayTolerance = 1024

/**
 * One connection's view of each market's venue epoch, for deltas that carry none: set by `reset` markers, or moved
 * on when a fresh session starts a market's seqs again (at 1, or more than `replayTolerance` below the last seq of
 * the previous session).
 */
export class FeedEpochs {
  private readonly epochs = new Map<string, number>()
  /** Last stored seq per market in this session and the one before. */
  private current = new Map<string, number>()
  private previous = new Map<string, number>()

  /** The connection was reopened: seqs seen so far belong to the previous session. */
  newSession(): void {
    for (const [market, seq] of this.current) this.previous.set(market, seq)
    this.current = new Map()
  }

  epochOf(market: string): number {
    return this.epochs.get(market) ?? 0
  }

  /** A `reset` marker: `epoch` if given (never backwards), else the next one. */
  marker(market: string, epoch: number | undefined): void {
    const now = this.epochOf(market)
    this.epochs.set(market, epoch === undefined ? Math.min(maxEpoch, now + 1) : Math.max(now, epoch))
  }

  /**
   * The stored seq of a delta (`tagged`: its own epoch, else this connection's) and whether it revealed an
   * unannounced reset.
   */
  resolve(market: string, seq: number, tagged: number | undefined): { stored: number; regressed: boolean } {
    let epoch = tagged ?? this.epochOf(market)
    if (tagged !== undefined && tagged > this.epochOf(market)) this.epochs.set(market, tagged)
    let regressed = false
    const last = this.current.get(market)
    if (last === undefined && tagged === undefined) {
      const before = this.previous.get(market)
      if (before !== undefined && epochOf(before) === epoch) {
        const lastSeq = before - epoch * epochSpan
        if (seq < lastSeq && (seq === 1 || lastSeq - seq > replayTolerance) && epoch < maxEpoch) {
          epoch++
          this.epochs.set(market, epoch)
          regressed = true
        }
      }
    }
    const stored = epoch === 0 ? seq : storedSeq(epoch, seq)
    if (last === undefined || stored > last) this.current.set(market, stored)
    return { stored, regressed }
  }
}

export interface FeedCounters {
  /** Valid delta copies taken from frames. */
  received: number
  /** Frames or deltas rejected (invalid JSON, unknown market, negative, fractional or out-of-range seq, bad fields). */
  garbage: number
  /** Frames with anything rejected in them (a frame of 100 bad deltas is one). */
  garbageFrames: number
  /** Reset markers received (`{"type":"reset"}`). */
  resets: number
  /** Markets whose seq went back in a fresh session with no marker: taken as resets (next epoch). */
  regressions: number
  /** The last rejection, escaped for the log. */
  lastGarbage: string
}

export const feedCounters = (): FeedCounters => ({
  received: 0,
  garbage: 0,
  garbageFrames: 0,
  resets: 0,
  regressions: 0,
  lastGarbage: ""
})

/**
 * Parses one text frame; each valid delta is appended to `batches[shardOf.get(market)]` with its stored seq. Control
 * frames (`subscribed`, `error`) are ignored, `reset` markers counted and, with `epochs`, applied to the market's
 * later untagged deltas. Returns how many deltas were taken.
 */
export const parseFrame = (
  text: string,
  shardOf: ReadonlyMap<string, number>,
  batches: ReadonlyArray<DeltaColumns>,
  counters: FeedCounters,
  epochs?: FeedEpochs
): number => {
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    counters.garbageFrames++
    return reject(counters, `invalid JSON: ${escapeVenue(text)}`)
  }
  if (typeof frame !== "object" || frame === null) {
    counters.garbageFrames++
    return reject(counters, "not an object")
  }
  const type = (frame as { type?: unknown }).type
  if (type !== "deltas") {
    if (type === "subscribed" || type === "unsubscribed" || type === "error") return 0
    if (type === "reset") {
      counters.resets++
      const { market, epoch } = frame as { market?: unknown; epoch?: unknown }
      if (typeof market !== "string" || !shardOf.has(market)) {
        counters.garbageFrames++
        return reject(counters, `reset of unknown market ${escapeVenue(market, 40)}`)
      }
      if (
        epoch !== undefined &&
        !(typeof epoch === "number" && Number.isInteger(epoch) && epoch >= 0 && epoch <= maxEpoch)
      ) {
        counters.garbageFrames++
        return reject(counters, `bad reset epoch ${escapeVenue(epoch, 40)} for ${escapeVenue(market, 40)}`)
      }
      epochs?.marker(market, epoch as number | undefined)
      return 0
    }
    counters.garbageFrames++
    return reject(counters, `unknown frame type ${escapeVenue(type, 40)}`)
  }
  const deltas = (frame as { d?: unknown }).d
  if (!Array.isArray(deltas)) {
    counters.garbageFrames++
    return reject(counters, "deltas without d")
  }
  const garbageBefore = counters.garbage
  let taken = 0
  for (let i = 0; i < deltas.length; i++) {
    const d = deltas[i]
    if (!Array.isArray(d) || (d.length !== 6 && d.length !== 7)) {
      reject(counters, "delta is not [market, seq, ts, side, price, qty, epoch?]")
      continue
    }
    const market = d[0]
    const shard = typeof market === "string" ? shardOf.get(market) : undefined
    if (shard === undefined) {
      reject(counters, `unknown market ${escapeVenue(market, 40)}`)
      continue
    }
    const seq = d[1]
    const ts = d[2]
    const side = d[3]
    const price = d[4]
    const qty = d[5]
    const tagged = d.length === 7
    const epoch = tagged ? d[6] : 0
    // A seq past 2^40 (or a stray epoch) would poison the deduplicator's window: refused like any garbage.
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1 || seq >= epochSpan) {
      reject(counters, `bad seq ${escapeVenue(seq, 40)} for ${escapeVenue(market, 40)}`)
      continue
    }
    if (typeof epoch !== "number" || !Number.isInteger(epoch) || epoch < 0 || epoch > maxEpoch) {
      reject(counters, `bad epoch ${escapeVenue(epoch, 40)} for ${escapeVenue(market, 40)}`)
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
      reject(counters, `bad fields for ${escapeVenue(market, 40)}/${seq}`)
      continue
    }
    let stored = epoch === 0 ? seq : storedSeq(epoch, seq)
    if (epochs !== undefined) {
      const resolved = epochs.resolve(market, seq, tagged ? epoch : undefined)
      stored = resolved.stored
      if (resolved.regressed) counters.regressions++
    }
    pushDelta(batches[shard], market, stored, ts, side, price, qty)
    taken++
  }
  if (counters.garbage > garbageBefore) counters.garbageFrames++
  counters.received += taken
  return taken
}

const reject = (counters: FeedCounters, why: string): number => {
  counters.garbage++
  counters.lastGarbage = why
  return 0
}
