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
import { clearColumns, type DeltaColumns, emptyColumns, pushDelta } from "./dedup.ts"

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

/** Rows `[from, to)` of `columns` as new arrays. */
export const sliceColumns = (columns: DeltaColumns, from: number, to: number): DeltaColumns => ({
  market: columns.market.slice(from, to),
  seq: columns.seq.slice(from, to),
  ts: columns.ts.slice(from, to),
  side: columns.side.slice(from, to),
  price: columns.price.slice(from, to),
  qty: columns.qty.slice(from, to)
})

/**
 * Drops the first `n` rows, keeping in `newest` the highest-seq dropped copy of each market: sent later, it tells
 * the deduplicator there is a hole to heal even if the market then goes quiet.
 */
const dropOldest = (columns: DeltaColumns, n: number, newest: Map<string, number>, kept: DeltaColumns): void => {
  for (let i = 0; i < n; i++) {
    const market = columns.market[i]
    const at = newest.get(market)
    if (at === undefined) {
      newest.set(market, kept.seq.length)
      pushDelta(kept, market, columns.seq[i], columns.ts[i], columns.side[i], columns.price[i], columns.qty[i])
    } else if (columns.seq[i] > kept.seq[at]) {
      kept.seq[at] = columns.seq[i]
      kept.ts[at] = columns.ts[i]
      kept.side[at] = columns.side[i]
      kept.price[at] = columns.price[i]
      kept.qty[at] = columns.qty[i]
    }
  }
  columns.market.splice(0, n)
  columns.seq.splice(0, n)
  columns.ts.splice(0, n)
  columns.side.splice(0, n)
  columns.price.splice(0, n)
  columns.qty.splice(0, n)
}

const append = (out: DeltaColumns, rows: DeltaColumns): void => {
  for (let i = 0; i < rows.seq.length; i++) {
    pushDelta(out, rows.market[i], rows.seq[i], rows.ts[i], rows.side[i], rows.price[i], rows.qty[i])
  }
}

/**
 * A gatherer's copies on their way to each deduplicator, at most `max` per deduplicator: `fresh[k]` fills from the
 * venue while a send to `k` is in flight; a failed send's unsent rows are kept and go again, in front of the fresh
 * ones (the deduplicator merges by seq, so a copy it already took is only a duplicate). Past `max` the oldest are
 * dropped and counted: another replica carries them, or the hole they leave is healed from a snapshot. Of the dropped
 * copies the newest of each market is kept and sent, so the hole is seen: the bound is `max` plus one per market.
 */
export class Outbox {
  /** Where `parseFrame` appends (pass the array: its elements are swapped as sends start). */
  readonly fresh: Array<DeltaColumns>
  private readonly out: Array<DeltaColumns>
  /** Per deduplicator: the newest dropped copy of each market (`kept`), and its row there by market (`newest`). */
  private readonly newest: Array<Map<string, number>>
  private readonly kept: Array<DeltaColumns>
  /** Copies dropped for the bound, in all. */
  dropped = 0
  readonly max: number

  constructor(shards: number, max: number) {
    this.max = max
    this.fresh = Array.from({ length: shards }, emptyColumns)
    this.out = Array.from({ length: shards }, emptyColumns)
    this.newest = Array.from({ length: shards }, () => new Map())
    this.kept = Array.from({ length: shards }, emptyColumns)
  }

  /**
   * Drops the oldest fresh copies past the bound, counting the ones a send in flight holds (those are left alone:
   * the call may still read them).
   */
  cap(): void {
    for (let k = 0; k < this.fresh.length; k++) {
      const fresh = this.fresh[k]
      const over = Math.min(fresh.seq.length, fresh.seq.length + this.out[k].seq.length - this.max)
      if (over > 0) {
        dropOldest(fresh, over, this.newest[k], this.kept[k])
        this.dropped += over
      }
    }
  }

  /** What to send to deduplicator `k` now: the rows kept from a failed send, then the fresh ones, at most `max`. */
  take(k: number): DeltaColumns {
    const fresh = this.fresh[k]
    let out = this.out[k]
    if (fresh.seq.length > 0) {
      if (out.seq.length === 0) {
        // The common case: swap the buffers, nothing copied.
        this.fresh[k] = out
        this.out[k] = fresh
        out = fresh
      } else {
        append(out, fresh)
        clearColumns(fresh)
      }
    }
    const over = out.seq.length - this.max
    if (over > 0) {
      dropOldest(out, over, this.newest[k], this.kept[k])
      this.dropped += over
    }
    const kept = this.kept[k]
    if (kept.seq.length > 0) {
      append(out, kept)
      clearColumns(kept)
      this.newest[k].clear()
    }
    return out
  }

  /** Everything `take(k)` returned was delivered. */
  delivered(k: number): void {
    clearColumns(this.out[k])
  }

  /**
   * Rows `[from, n)` of what `take(k)` returned were not delivered: kept for the next `take`, in new arrays, since a
   * call that timed out may still hold the old ones.
   */
  failed(k: number, from: number): void {
    const out = this.out[k]
    this.out[k] = sliceColumns(out, from, out.seq.length)
  }

  /** Copies waiting for deduplicator `k` (to be sent again, fresh, and the newest dropped ones). */
  backlog(k: number): number {
    return this.out[k].seq.length + this.fresh[k].seq.length + this.kept[k].seq.length
  }
}
