/**
 * The deduplication window (pure, no Effect): takes every copy of every delta from R gatherer replicas, emits
 * each `(market, seq)` exactly once and in seq order per market, counts duplicates, and reports gaps that no
 * replica filled within a deadline so the caller can request a snapshot from the venue.
 *
 * Per market it keeps `next` (the first seq not yet emitted) and the copies that arrived ahead of it (at most
 * `window` seqs ahead). Anything below `next` is a duplicate by construction, so memory stays bounded while
 * exactly-once holds for any arrival order.
 */

/** Deltas as parallel arrays: the wire shape of a gatherer's batch and of the writer's buffer. */
export interface DeltaColumns {
  market: Array<string>
  seq: Array<number>
  ts: Array<number>
  side: Array<number>
  price: Array<number>
  qty: Array<number>
}

export const emptyColumns = (): DeltaColumns => ({ market: [], seq: [], ts: [], side: [], price: [], qty: [] })

export const clearColumns = (columns: DeltaColumns): void => {
  columns.market.length = 0
  columns.seq.length = 0
  columns.ts.length = 0
  columns.side.length = 0
  columns.price.length = 0
  columns.qty.length = 0
}

export const pushDelta = (
  out: DeltaColumns,
  market: string,
  seq: number,
  ts: number,
  side: number,
  price: number,
  qty: number
): void => {
  out.market.push(market)
  out.seq.push(seq)
  out.ts.push(ts)
  out.side.push(side)
  out.price.push(price)
  out.qty.push(qty)
}

/** A gap that outlived its deadline: ask the venue for everything from `fromSeq` on. */
export interface SnapshotRequest {
  readonly market: string
  readonly fromSeq: number
}

interface MarketState {
  /** First seq not yet emitted; 0 until the first copy (or the last written seq) fixes it. */
  next: number
  /** Copies ahead of `next`, by seq: [ts, side, price, qty]. */
  readonly ahead: Map<number, readonly [number, number, number, number]>
  /** Highest seq seen, held or not: a copy dropped for the window still proves a hole at `next`. */
  maxSeen: number
  /** When the current hole at `next` was first seen (ms); 0 when there is no hole. */
  gapSince: number
  /** When a snapshot was requested for this market (ms); 0 when none is in flight. */
  snapshotAt: number
}

export interface DedupOptions {
  /** How far ahead of `next` copies are kept; a copy further ahead makes the gap due at once. */
  readonly window: number
  /** How long a hole may stay open before a snapshot is requested (ms). */
  readonly gapDeadlineMs: number
  /** How long to wait for a snapshot before asking again (ms). */
  readonly snapshotRetryMs: number
}

export const defaultOptions: DedupOptions = { window: 4096, gapDeadlineMs: 200, snapshotRetryMs: 2000 }

export interface DedupCounters {
  /** Deltas emitted (first copies, including those a snapshot supplied). */
  accepted: number
  /** Copies dropped because that `(market, seq)` was already emitted or already held. */
  duplicates: number
  /** Copies dropped because they were more than `window` seqs ahead (a snapshot covers them). */
  overflow: number
  /** Holes that outlived the deadline. */
  gaps: number
  snapshotsRequested: number
  snapshotsApplied: number
  /** Deltas a snapshot supplied that no replica had delivered. */
  healed: number
  /** Seqs the venue no longer retained when a snapshot was applied: lost for good. */
  skipped: number
}

export class DedupWindow {
  readonly options: DedupOptions
  readonly counters: DedupCounters = {
    accepted: 0,
    duplicates: 0,
    overflow: 0,
    gaps: 0,
    snapshotsRequested: 0,
    snapshotsApplied: 0,
    healed: 0,
    skipped: 0
  }
  private readonly markets = new Map<string, MarketState>()
  /** Markets with copies held ahead of a hole: the only ones `due` has to look at. */
  private readonly holes = new Set<string>()

  constructor(options: Partial<DedupOptions> = {}) {
    this.options = { ...defaultOptions, ...options }
  }

  /** Whether the market's starting point is known (seen before or initialised from storage). */
  has(market: string): boolean {
    return this.markets.has(market)
  }

  /** Starts a market after the last seq already written (from storage); `undefined`: nothing written yet. */
  init(market: string, lastWritten: number | undefined): void {
    if (this.markets.has(market)) return
    this.markets.set(market, {
      next: lastWritten === undefined ? 0 : lastWritten + 1,
      ahead: new Map(),
      maxSeen: 0,
      gapSince: 0,
      snapshotAt: 0
    })
  }

  /** The first seq not yet emitted for `market` (0 when unknown). */
  nextSeq(market: string): number {
    return this.markets.get(market)?.next ?? 0
  }

  get marketCount(): number {
    return this.markets.size
  }

  get openHoles(): number {
    return this.holes.size
  }

  /** Offers one copy; first copies are appended to `out` in seq order. Returns whether it was new. */
  offer(
    out: DeltaColumns,
    now: number,
    market: string,
    seq: number,
    ts: number,
    side: number,
    price: number,
    qty: number
  ): boolean {
    let state = this.markets.get(market)
    if (state === undefined) {
      state = { next: seq, ahead: new Map(), maxSeen: 0, gapSince: 0, snapshotAt: 0 }
      this.markets.set(market, state)
    } else if (state.next === 0) {
      state.next = seq
    }
    return this.place(out, now, market, state, seq, ts, side, price, qty, false)
  }

  /**
   * Applies a venue snapshot: its deltas (ascending seq, from `firstSeq`) fill the hole. When the venue no
   * longer retains `next`, the seqs in between are skipped and counted.
   */
  applySnapshot(out: DeltaColumns, now: number, market: string, firstSeq: number, deltas: DeltaColumns): void {
    let state = this.markets.get(market)
    if (state === undefined) {
      state = { next: firstSeq, ahead: new Map(), maxSeen: 0, gapSince: 0, snapshotAt: 0 }
      this.markets.set(market, state)
    }
    this.counters.snapshotsApplied++
    state.snapshotAt = 0
    if (state.next === 0) state.next = firstSeq
    if (firstSeq > state.next) {
      this.counters.skipped += firstSeq - state.next
      state.next = firstSeq
      this.drain(out, now, market, state)
    }
    for (let i = 0; i < deltas.seq.length; i++) {
      this.place(
        out,
        now,
        market,
        state,
        deltas.seq[i],
        deltas.ts[i],
        deltas.side[i],
        deltas.price[i],
        deltas.qty[i],
        true
      )
    }
    if (state.ahead.size === 0 && state.maxSeen < state.next) {
      this.holes.delete(market)
      state.gapSince = 0
    } else {
      state.gapSince = now
    }
  }

  /**
   * A copy refused unseen (shed while writes lag): its seq is remembered like a copy held, so the hole it leaves is
   * due for a snapshot even if the market goes quiet. A market with no known start is left to its first copy.
   */
  noteRefused(now: number, market: string, seq: number): void {
    const state = this.markets.get(market)
    if (state === undefined || state.next === 0 || seq < state.next) return
    if (seq > state.maxSeen) state.maxSeen = seq
    if (!this.holes.has(market)) {
      this.holes.add(market)
      state.gapSince = now
    }
  }

  /** Holes past their deadline with no snapshot in flight; marks them as requested. */
  due(now: number, requests: Array<SnapshotRequest>): void {
    const { gapDeadlineMs, snapshotRetryMs } = this.options
    for (const market of this.holes) {
      const state = this.markets.get(market)!
      if (state.snapshotAt !== 0) {
        if (now - state.snapshotAt < snapshotRetryMs) continue
      } else if (now - state.gapSince < gapDeadlineMs) {
        continue
      } else {
        this.counters.gaps++
      }
      state.snapshotAt = now
      this.counters.snapshotsRequested++
      requests.push({ market, fromSeq: state.next })
    }
  }

  private place(
    out: DeltaColumns,
    now: number,
    market: string,
    state: MarketState,
    seq: number,
    ts: number,
    side: number,
    price: number,
    qty: number,
    fromSnapshot: boolean
  ): boolean {
    if (seq < state.next || state.ahead.has(seq)) {
      if (!fromSnapshot) this.counters.duplicates++
      return false
    }
    if (seq > state.maxSeen) state.maxSeen = seq
    if (seq === state.next) {
      pushDelta(out, market, seq, ts, side, price, qty)
      this.counters.accepted++
      if (fromSnapshot) this.counters.healed++
      state.next++
      this.drain(out, now, market, state)
      return true
    }
    if (seq - state.next >= this.options.window) {
      this.counters.overflow++
      // Too far ahead to hold (`maxSeen` remembers it): the hole is due now.
      this.holes.add(market)
      state.gapSince = now - this.options.gapDeadlineMs
      return false
    }
    state.ahead.set(seq, [ts, side, price, qty])
    if (!this.holes.has(market)) {
      this.holes.add(market)
      state.gapSince = now
    }
    return true
  }

  /** Emits the held copies that follow `next` without a hole. */
  private drain(out: DeltaColumns, now: number, market: string, state: MarketState): void {
    const ahead = state.ahead
    let held = ahead.get(state.next)
    const moved = held !== undefined
    while (held !== undefined) {
      pushDelta(out, market, state.next, held[0], held[1], held[2], held[3])
      this.counters.accepted++
      ahead.delete(state.next)
      state.next++
      held = ahead.get(state.next)
    }
    if (ahead.size === 0 && state.maxSeen < state.next) {
      this.holes.delete(market)
      state.gapSince = 0
    } else if (moved) {
      state.gapSince = now
    }
  }
}
