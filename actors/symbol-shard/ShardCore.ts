// The shard's pure state machine around the engine: order ids, idempotency keys, the rows that must be
// written before an acknowledgement (journal commands, changed orders, new trades), and the shard
// snapshot. No Effect imports: the entity drives it and does the I/O.
//
// Determinism: the journal holds only accepted commands, with the integer price/qty the engine saw and the
// order id assigned here, so replaying a snapshot plus the journal rebuilds the same book, the same order
// ids and the same idempotency results.
//
// Bounded memory: the idempotency keys (places and Cancel/Move request ids) and the engine's finished orders are
// kept for the newest `ShardLimits` entries. Both are trimmed only at a seal (and at the same point of a replayed
// journal row), and only entries of batches sealed before, which are durable by then: so the trimmed state is a
// function of the journal alone (snapshot restore + replay rebuilds it exactly), and a forgotten entry is always in
// the `orders` table. Forgotten keys enter a Bloom filter (`KeyFilter`); a key it may hold is never applied blindly.

import { MAX_UNITS } from "./engine/Decimal.ts"
import type { BookSnapshot } from "./engine/OrderBook.ts"
import { OrderBook, REJECT_NAMES } from "./engine/OrderBook.ts"
import { KeyFilter, type KeyFilterJson } from "./KeyFilter.ts"

export interface SymbolConfig {
  readonly symbol: string
  readonly tick: string
  readonly lot: string
  readonly minQty?: string | undefined
  readonly maxQty?: string | undefined
}

export type OrderStatusName = "open" | "filled" | "canceled" | "expired" | "killed"
export type RejectName =
  | "invalid_price"
  | "invalid_qty"
  | "duplicate_id"
  | "unknown_order"
  | "would_cross"
  | "key_expired"

/** How much a shard remembers (runtime/config.ts: `TESSERA_SHARD_*`). */
export interface ShardLimits {
  /** Place keys `(account, clientOrderId)` remembered with their results, newest first; as many request ids. */
  readonly recentKeys: number
  /** Finished orders whose final state stays in memory; older ones are read from the `orders` table. */
  readonly finishedOrders: number
  /** Bits of the filter of forgotten keys (rounded up to a power of two). */
  readonly forgottenFilterBits: number
}

export const defaultLimits: ShardLimits = {
  recentKeys: 100_000,
  finishedOrders: 100_000,
  forgottenFilterBits: 2 ** 24
}

export interface PlaceInput {
  readonly account: string
  readonly clientOrderId: string
  readonly side: "buy" | "sell"
  readonly type?: "limit" | "market" | undefined
  readonly price?: string | undefined
  readonly qty: string
  readonly tif?: "GTC" | "IOC" | "FOK" | undefined
  readonly postOnly?: boolean | undefined
}

export interface Fill {
  readonly tradeId: number
  readonly makerOrderId: string
  readonly price: string
  readonly qty: string
}

export interface PlaceResult {
  readonly orderId: string
  readonly clientOrderId: string
  readonly status: OrderStatusName
  readonly filledQty: string
  readonly openQty: string
  readonly trades: ReadonlyArray<Fill>
}

/** An order's state. Finished orders keep only status and quantities in memory (the `orders` table has the rest). */
export interface OrderView {
  readonly orderId: string
  readonly account?: string | undefined
  readonly clientOrderId?: string | undefined
  readonly side?: "buy" | "sell" | undefined
  readonly price?: string | null | undefined
  readonly status: OrderStatusName
  readonly filledQty: string
  readonly openQty: string
}

export interface MoveResult {
  readonly orderId: string
  readonly status: OrderStatusName
  readonly filledQty: string
  readonly openQty: string
  readonly trades: ReadonlyArray<Fill>
}

/** A row of the `orders` table, as bound parameters. */
export interface OrderRow {
  readonly symbol: string
  readonly order_id: number
  readonly account: string
  readonly client_order_id: string
  readonly side: string
  readonly type: string
  readonly tif: string
  readonly post_only: number
  readonly price: string | null
  readonly qty: string
  readonly filled_qty: string
  readonly status: string
}

/** A row of the `trades` table. */
export interface TradeRow {
  readonly symbol: string
  readonly trade_id: number
  readonly maker_order_id: number
  readonly taker_order_id: number
  readonly taker_side: string
  readonly price: string
  readonly qty: string
}

/** A journal command: accepted commands only, integers as the engine saw them. */
export type JournalCommand =
  | readonly [
      op: "p",
      id: number,
      account: string,
      clientOrderId: string,
      side: number,
      type: number,
      tif: number,
      postOnly: number,
      price: number,
      qty: number
    ]
  | readonly [op: "c", id: number, requestId?: string]
  | readonly [op: "m", id: number, price: number, qty: number, requestId?: string]

/** Commands applied since the last seal, waiting to become durable together. */
export class PendingBatch {
  commands: Array<JournalCommand> = []
  trades: Array<TradeRow> = []
  dirty = new Map<string, OrderMeta>()
  /** Set by the driver (e.g. a Deferred completed when the batch is durable). */
  token: unknown = undefined
  durable = false
}

/** A batch frozen for writing: plain rows, safe to write while new commands accumulate. */
export interface SealedBatch {
  readonly symbol: string
  readonly seq: number
  readonly commands: string
  readonly orders: ReadonlyArray<OrderRow>
  readonly trades: ReadonlyArray<TradeRow>
  readonly count: number
  /** A snapshot to store in the batch's own transaction (the journal's portable path); `seal` leaves it out. */
  readonly snapshot: string | undefined
  readonly batch: PendingBatch
}

/** What `seal` gives: the batch, and the shard's state after it when a snapshot is due. */
export interface Sealed extends SealedBatch {
  /**
   * A copy of the shard's state as of this batch, unaffected by later commands: encoded (`jsonPieces`, between
   * turns of the event loop) and stored once the batch is durable. Encoded at the seal, a book of a few hundred
   * thousand resting orders held the runner's loop for hundreds of milliseconds.
   */
  readonly state: ShardSnapshot | undefined
}

interface OrderMeta {
  readonly id: string
  readonly account: string
  readonly clientOrderId: string
  readonly side: number
  readonly type: number
  readonly tif: number
  readonly postOnly: number
  price: number
  qty: number
  filled: number
  /** 0 open, else DoneReason. */
  status: number
}

type MetaTuple = readonly [string, string, string, number, number, number, number, number, number, number]

export interface ShardSnapshot {
  readonly version: 1 | 2
  readonly seq: number
  readonly nextOrderId: number
  readonly book: BookSnapshot
  readonly open: ReadonlyArray<MetaTuple>
  readonly idem: ReadonlyArray<readonly [string, PlaceResult]>
  // Version 2: Cancel/Move request results, the forgotten-key filter and the trim marks.
  readonly requests?: ReadonlyArray<readonly [string, OrderView | MoveResult]>
  readonly forgotten?: KeyFilterJson | null
  readonly marks?: readonly [idem: number, requests: number, finished: number]
}

interface Remembered<A> {
  readonly result: A
  /** The batch the command joined; undefined once replayed (durable). */
  readonly batch: PendingBatch | undefined
}

/**
 * The idempotency key of a place. Injective because the wire grammar (`Ids.Key`) refuses U+0000 in accounts and client
 * order ids, so the separator cannot occur inside either; the format stays as it is because snapshots hold these keys
 * (and the forgotten-key filter their hashes).
 */
export const placeKey = (account: string, clientOrderId: string) => `${account}\u0000${clientOrderId}`
const requestKey = (op: "c" | "m", orderId: string, requestId: string) => `${op}\u0000${orderId}\u0000${requestId}`

/** Drops the oldest entries beyond `keep`, only among the first `marked` (those of earlier, durable batches). */
const trim = <A>(map: Map<string, A>, keep: number, marked: number, forgotten: KeyFilter): number => {
  let n = Math.min(map.size - keep, marked)
  if (n > 0) {
    for (const key of map.keys()) {
      map.delete(key)
      forgotten.add(key)
      if (--n === 0) break
    }
  }
  return map.size
}

const SIDES = ["buy", "sell"] as const
const TYPES = ["limit", "market"] as const
const TIFS = ["GTC", "IOC", "FOK"] as const
const STATUS_NAMES: ReadonlyArray<OrderStatusName> = ["open", "filled", "canceled", "expired", "killed"]

export type Outcome<A> =
  | { readonly ok: A; readonly batch: PendingBatch | undefined }
  | { readonly rejected: RejectName }

/**
 * What the `orders` table says about place keys the filter may hold: key (`placeKey`) -> true if a row exists
 * (the key was used: `key_expired`), false if not (a fresh key, a filter false positive).
 */
export type KeyVerdicts = ReadonlyMap<string, boolean>

export class ShardCore {
  readonly symbol: string
  book: OrderBook
  /** Last sealed (or replayed) journal sequence number. */
  seq = 0
  nextOrderId = 1
  /** Commands since the last snapshot. */
  sinceSnapshot = 0
  pending = new PendingBatch()
  readonly limits: ShardLimits
  private open = new Map<string, OrderMeta>()
  private idem = new Map<string, Remembered<PlaceResult>>()
  private requests = new Map<string, Remembered<OrderView | MoveResult>>()
  private forgotten: KeyFilter
  // Entries present at the last seal: the only ones the next seal may trim (see `trim`).
  private idemMarked = 0
  private requestsMarked = 0
  private finishedMarked = 0
  private replaying = false

  constructor(config: SymbolConfig, limits: ShardLimits = defaultLimits) {
    this.symbol = config.symbol
    this.limits = limits
    this.book = new OrderBook({ tick: config.tick, lot: config.lot, minQty: config.minQty, maxQty: config.maxQty })
    this.forgotten = new KeyFilter(limits.forgottenFilterBits)
  }

  /**
   * The quantity limits for new places and moves (an admin's `Symbols.Set`); tick and lot are fixed for a symbol's
   * life, since the book holds prices and quantities as integers of them. Throws a RangeError on bad limits.
   */
  setQtyLimits(minQty: string | undefined, maxQty: string | undefined): void {
    this.book.setQtyLimits(minQty, maxQty)
  }

  /** Remembered keys and finished orders, for tests and metrics. */
  get remembered(): { places: number; requests: number; finished: number; forgotten: number } {
    return {
      places: this.idem.size,
      requests: this.requests.size,
      finished: this.book.finishedCount,
      forgotten: this.forgotten.count
    }
  }

  /**
   * The place key of `(account, clientOrderId)` when it must be checked against the `orders` table before a
   * place (not remembered, and the filter of forgotten keys may hold it); undefined otherwise.
   */
  needsCheck(account: string, clientOrderId: string): string | undefined {
    if (this.forgotten.count === 0) return undefined
    const key = placeKey(account, clientOrderId)
    return this.idem.has(key) || !this.forgotten.has(key) ? undefined : key
  }

  get pendingCount(): number {
    return this.pending.commands.length
  }

  // ---- commands --------------------------------------------------------------------------------

  /**
   * A place, or the first result of a remembered key. A key the forgotten-key filter may hold is placed only when
   * `verdicts` says the `orders` table has no row for it (see `needsCheck`); otherwise `key_expired`.
   */
  place(input: PlaceInput, verdicts?: KeyVerdicts): Outcome<PlaceResult> {
    const key = placeKey(input.account, input.clientOrderId)
    const seen = this.idem.get(key)
    if (seen !== undefined) return { ok: seen.result, batch: seen.batch?.durable ? undefined : seen.batch }
    if (this.forgotten.count > 0 && this.forgotten.has(key) && verdicts?.get(key) !== false) {
      return { rejected: "key_expired" }
    }
    const book = this.book
    const type = input.type === "market" ? 1 : 0
    const price = type === 1 ? 0 : input.price === undefined ? -1 : book.priceUnit.toUnits(input.price)
    const qty = book.qtyUnit.toUnits(input.qty)
    const tif = input.tif === "FOK" ? 2 : input.tif === "IOC" ? 1 : 0
    const side = input.side === "sell" ? 1 : 0
    const postOnly = input.postOnly === true ? 1 : 0
    const id = this.nextOrderId
    const result = this.applyPlace(id, input.account, input.clientOrderId, side, type, tif, postOnly, price, qty)
    if (typeof result === "string") return { rejected: result }
    return { ok: result, batch: this.pending }
  }

  /**
   * Cancels an open order. With a `requestId`, an accepted cancel is remembered under `(orderId, requestId)`: a
   * retry returns the first result. A request id the shard may have forgotten is refused (`key_expired`) while
   * the order is open; once it is not, any cancel is `unknown_order` (nothing can apply twice).
   */
  cancel(orderId: string, requestId?: string): Outcome<OrderView> {
    const key = requestId === undefined ? undefined : requestKey("c", orderId, requestId)
    if (key !== undefined) {
      const seen = this.requests.get(key)
      if (seen !== undefined)
        return { ok: seen.result as OrderView, batch: seen.batch?.durable ? undefined : seen.batch }
    }
    const meta = this.open.get(orderId)
    if (meta === undefined) return { rejected: "unknown_order" }
    if (key !== undefined && this.forgotten.count > 0 && this.forgotten.has(key)) return { rejected: "key_expired" }
    const code = this.applyCancel(Number(orderId), requestId)
    if (code !== 0) return { rejected: REJECT_NAMES[code] as RejectName }
    return {
      ok: key === undefined ? this.view(meta) : (this.requests.get(key)?.result as OrderView),
      batch: this.pending
    }
  }

  /** Moves an open order; `requestId` as for `cancel`. */
  move(orderId: string, price: string | undefined, qty: string | undefined, requestId?: string): Outcome<MoveResult> {
    const key = requestId === undefined ? undefined : requestKey("m", orderId, requestId)
    if (key !== undefined) {
      const seen = this.requests.get(key)
      if (seen !== undefined)
        return { ok: seen.result as MoveResult, batch: seen.batch?.durable ? undefined : seen.batch }
    }
    const meta = this.open.get(orderId)
    if (meta === undefined) return { rejected: "unknown_order" }
    if (key !== undefined && this.forgotten.count > 0 && this.forgotten.has(key)) return { rejected: "key_expired" }
    const book = this.book
    const p = price === undefined ? 0 : book.priceUnit.toUnits(price)
    const q = qty === undefined ? 0 : book.qtyUnit.toUnits(qty)
    const fills: Array<Fill> = []
    const code = this.applyMove(Number(orderId), p, q, fills, requestId)
    if (code !== 0) return { rejected: REJECT_NAMES[code] as RejectName }
    const result = key === undefined ? this.moveResult(meta, fills) : (this.requests.get(key)?.result as MoveResult)
    return { ok: result, batch: this.pending }
  }

  /** An order's current state: open orders from memory, finished ones from the engine's final status. */
  order(orderId: string): OrderView | undefined {
    const meta = this.open.get(orderId)
    if (meta !== undefined) return this.view(meta)
    const done = this.book.status(orderId)
    if (done === undefined) return undefined
    return { orderId, status: done.status, filledQty: done.filledQty, openQty: done.openQty }
  }

  /** The idempotency result of an earlier place, if any. */
  placed(account: string, clientOrderId: string): PlaceResult | undefined {
    return this.idem.get(placeKey(account, clientOrderId))?.result
  }

  // ---- batches ---------------------------------------------------------------------------------

  /** Freezes the pending batch for writing and starts a new one. `withSnapshot` adds a shard snapshot. */
  seal(withSnapshot: boolean): Sealed {
    const batch = this.pending
    this.pending = new PendingBatch()
    const seq = ++this.seq
    const orders: Array<OrderRow> = []
    for (const meta of batch.dirty.values()) orders.push(this.row(meta))
    const count = batch.commands.length
    this.sinceSnapshot += count
    this.retire()
    let state: ShardSnapshot | undefined
    if (withSnapshot) {
      state = this.snapshot()
      this.sinceSnapshot = 0
    }
    return {
      symbol: this.symbol,
      seq,
      commands: JSON.stringify(batch.commands),
      orders,
      trades: batch.trades,
      count,
      snapshot: undefined,
      state,
      batch
    }
  }

  /** Marks a sealed batch durable and drops its contents (idempotency entries may still point at it). */
  static markDurable(batch: PendingBatch): void {
    batch.durable = true
    batch.commands = []
    batch.trades = []
    batch.dirty.clear()
  }

  // ---- snapshot / replay -----------------------------------------------------------------------

  snapshot(): ShardSnapshot {
    const open: Array<MetaTuple> = []
    for (const m of this.open.values()) {
      open.push([m.id, m.account, m.clientOrderId, m.side, m.type, m.tif, m.postOnly, m.price, m.qty, m.filled])
    }
    const idem: Array<readonly [string, PlaceResult]> = []
    for (const [key, value] of this.idem) idem.push([key, value.result])
    const requests: Array<readonly [string, OrderView | MoveResult]> = []
    for (const [key, value] of this.requests) requests.push([key, value.result])
    return {
      version: 2,
      seq: this.seq,
      nextOrderId: this.nextOrderId,
      book: this.book.snapshot(),
      open,
      idem,
      requests,
      forgotten: this.forgotten.toJson() ?? null,
      marks: [this.idemMarked, this.requestsMarked, this.finishedMarked]
    }
  }

  /** Restores a shard from `JSON.stringify(snapshot())` (version 1 snapshots too: nothing forgotten yet). */
  static restore(config: SymbolConfig, json: string, limits: ShardLimits = defaultLimits): ShardCore {
    const snap = JSON.parse(json) as ShardSnapshot
    if (snap.version !== 1 && snap.version !== 2) {
      throw new Error(`unsupported shard snapshot version ${String(snap.version)}`)
    }
    const core = new ShardCore(config, limits)
    core.book = OrderBook.restore(snap.book)
    core.seq = snap.seq
    core.nextOrderId = snap.nextOrderId
    for (const [id, account, clientOrderId, side, type, tif, postOnly, price, qty, filled] of snap.open) {
      core.open.set(id, { id, account, clientOrderId, side, type, tif, postOnly, price, qty, filled, status: 0 })
    }
    for (const [key, result] of snap.idem) core.idem.set(key, { result, batch: undefined })
    for (const [key, result] of snap.requests ?? []) core.requests.set(key, { result, batch: undefined })
    core.forgotten = KeyFilter.fromJson(snap.forgotten, limits.forgottenFilterBits)
    const marks = snap.marks ?? [core.idem.size, core.requests.size, core.book.finishedCount]
    core.idemMarked = marks[0]
    core.requestsMarked = marks[1]
    core.finishedMarked = marks[2]
    return core
  }

  /** Re-applies one durable journal row (its commands, JSON) with sequence number `seq`. */
  replay(seq: number, commandsJson: string): void {
    const commands = JSON.parse(commandsJson) as ReadonlyArray<JournalCommand>
    this.replaying = true
    // Journaled commands were accepted under the limits of their day, which an admin may have changed since.
    const book = this.book
    const minLots = book.minLots
    const maxLots = book.maxLots
    book.setLotLimits(1, MAX_UNITS)
    try {
      for (const c of commands) {
        let code: number | string
        switch (c[0]) {
          case "p": {
            const r = this.applyPlace(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9])
            code = typeof r === "string" ? r : 0
            break
          }
          case "c":
            code = this.applyCancel(c[1], c[2])
            break
          case "m":
            // Trades are collected only to rebuild a remembered Move result.
            code = this.applyMove(c[1], c[2], c[3], c[4] === undefined ? undefined : [], c[4])
            break
        }
        if (code !== 0)
          throw new Error(`journal ${this.symbol}#${seq}: command ${JSON.stringify(c)} rejected on replay`)
      }
    } finally {
      this.replaying = false
      book.setLotLimits(minLots, maxLots)
    }
    this.seq = seq
    this.sinceSnapshot += commands.length
    this.retire()
  }

  // ---- bounded memory ----------------------------------------------------------------------------

  /** Trims the remembered keys and finished orders; runs at each seal and after each replayed row (see top). */
  private retire(): void {
    const limits = this.limits
    this.idemMarked = trim(this.idem, limits.recentKeys, this.idemMarked, this.forgotten)
    this.requestsMarked = trim(this.requests, limits.recentKeys, this.requestsMarked, this.forgotten)
    const book = this.book
    book.forgetOldestFinished(Math.min(book.finishedCount - limits.finishedOrders, this.finishedMarked))
    this.finishedMarked = book.finishedCount
  }

  // ---- internals -------------------------------------------------------------------------------

  private applyPlace(
    id: number,
    account: string,
    clientOrderId: string,
    side: number,
    type: number,
    tif: number,
    postOnly: number,
    price: number,
    qty: number
  ): PlaceResult | RejectName {
    const book = this.book
    const idText = String(id)
    const code = book.placeRaw(idText, account, side, type, tif, postOnly === 1, price, qty)
    if (code !== 0) return REJECT_NAMES[code] as RejectName
    this.nextOrderId = id + 1
    const meta: OrderMeta = {
      id: idText,
      account,
      clientOrderId,
      side,
      type,
      tif,
      postOnly,
      price: type === 1 ? 0 : price,
      qty,
      filled: 0,
      status: 0
    }
    this.open.set(idText, meta)
    const fills: Array<Fill> = []
    this.absorbEvents(meta, fills)
    const result: PlaceResult = {
      orderId: idText,
      clientOrderId,
      status: STATUS_NAMES[meta.status],
      ...this.quantities(meta),
      trades: fills
    }
    const pending = this.replaying ? undefined : this.pending
    this.idem.set(placeKey(account, clientOrderId), { result, batch: pending })
    if (pending !== undefined) {
      pending.commands.push(["p", id, account, clientOrderId, side, type, tif, postOnly, price, qty])
      pending.dirty.set(idText, meta)
    }
    return result
  }

  private applyCancel(id: number, requestId: string | undefined): number {
    const idText = String(id)
    const code = this.book.cancel(idText)
    if (code !== 0) return code
    const meta = this.open.get(idText)
    if (meta !== undefined) this.absorbEvents(meta, undefined)
    const pending = this.replaying ? undefined : this.pending
    if (pending !== undefined) pending.commands.push(requestId === undefined ? ["c", id] : ["c", id, requestId])
    if (requestId !== undefined && meta !== undefined) {
      this.requests.set(requestKey("c", idText, requestId), { result: this.view(meta), batch: pending })
    }
    return 0
  }

  private applyMove(
    id: number,
    price: number,
    qty: number,
    fills: Array<Fill> | undefined,
    requestId: string | undefined
  ): number {
    const idText = String(id)
    const meta = this.open.get(idText)
    const code = this.book.moveRaw(idText, price, qty)
    if (code !== 0 || meta === undefined) return code
    if (price !== 0) meta.price = price
    if (qty !== 0) meta.qty = meta.filled + qty
    const pending = this.replaying ? undefined : this.pending
    if (pending !== undefined) {
      pending.commands.push(requestId === undefined ? ["m", id, price, qty] : ["m", id, price, qty, requestId])
      pending.dirty.set(idText, meta)
    }
    this.absorbEvents(meta, fills)
    if (requestId !== undefined) {
      this.requests.set(requestKey("m", idText, requestId), {
        result: this.moveResult(meta, fills ?? []),
        batch: pending
      })
    }
    return 0
  }

  private moveResult(meta: OrderMeta, fills: ReadonlyArray<Fill>): MoveResult {
    return { orderId: meta.id, status: STATUS_NAMES[meta.status], ...this.quantities(meta), trades: fills }
  }

  /** Folds the engine's events for the last command into order state, trade rows and `fills`. */
  private absorbEvents(taker: OrderMeta, fills: Array<Fill> | undefined): void {
    const book = this.book
    const n = book.eventCount
    const kinds = book.eventKind
    const pending = this.replaying ? undefined : this.pending
    for (let i = 0; i < n; i++) {
      const kind = kinds[i]
      if (kind === 3) {
        const makerId = book.orderId(book.eventOrder[i])
        const maker = this.open.get(makerId)
        const qty = book.eventQty[i]
        const price = book.eventPrice[i]
        const tradeId = book.eventTradeId[i]
        taker.filled += qty
        if (maker !== undefined) {
          maker.filled += qty
          pending?.dirty.set(makerId, maker)
        }
        if (fills !== undefined || pending !== undefined) {
          const priceText = book.priceUnit.format(price)
          const qtyText = book.qtyUnit.format(qty)
          fills?.push({ tradeId, makerOrderId: makerId, price: priceText, qty: qtyText })
          pending?.trades.push({
            symbol: this.symbol,
            trade_id: tradeId,
            maker_order_id: Number(makerId),
            taker_order_id: Number(taker.id),
            taker_side: SIDES[taker.side],
            price: priceText,
            qty: qtyText
          })
        }
      } else if (kind === 4) {
        const id = book.orderId(book.eventOrder[i])
        const meta = id === taker.id ? taker : this.open.get(id)
        if (meta !== undefined) {
          meta.status = book.eventReason[i]
          this.open.delete(id)
          pending?.dirty.set(id, meta)
        }
      }
    }
    if (pending !== undefined) pending.dirty.set(taker.id, taker)
  }

  private quantities(meta: OrderMeta): { filledQty: string; openQty: string } {
    const unit = this.book.qtyUnit
    return { filledQty: unit.format(meta.filled), openQty: unit.format(meta.status === 0 ? meta.qty - meta.filled : 0) }
  }

  private view(meta: OrderMeta): OrderView {
    return {
      orderId: meta.id,
      account: meta.account,
      clientOrderId: meta.clientOrderId,
      side: SIDES[meta.side],
      price: meta.type === 1 ? null : this.book.priceUnit.format(meta.price),
      status: STATUS_NAMES[meta.status],
      ...this.quantities(meta)
    }
  }

  private row(meta: OrderMeta): OrderRow {
    return {
      symbol: this.symbol,
      order_id: Number(meta.id),
      account: meta.account,
      client_order_id: meta.clientOrderId,
      side: SIDES[meta.side],
      type: TYPES[meta.type],
      tif: TIFS[meta.tif],
      post_only: meta.postOnly,
      price: meta.type === 1 ? null : this.book.priceUnit.format(meta.price),
      qty: this.book.qtyUnit.format(meta.qty),
      filled_qty: this.book.qtyUnit.format(meta.filled),
      status: STATUS_NAMES[meta.status]
    }
  }
}
