// A pure, synchronous limit order book for one symbol: price-time priority, trades at the maker's
// price. Orders live in parallel typed arrays indexed by an integer slot (with a free list); each
// price level is a doubly linked FIFO of slots; each side keeps its levels in a sorted typed array
// with the best level at the end, so matching pops from the end and finding a level is a binary
// search over numbers (no string keys). A level that empties below the top stays in place, empty,
// so that orders moving around the same prices do not shift the arrays; empty levels are dropped
// when they reach the top and swept out when they outnumber the live ones. Every command writes its events into a reusable event
// buffer (typed arrays) that the caller reads before the next command.
import { DecimalUnit, MAX_UNITS } from "./Decimal.ts"

// ---- codes -------------------------------------------------------------------------------------

/** Order side. */
export const Side = { buy: 0, sell: 1 } as const
export type Side = (typeof Side)[keyof typeof Side]
/** Order type. */
export const OrderType = { limit: 0, market: 1 } as const
export type OrderType = (typeof OrderType)[keyof typeof OrderType]
/** Time in force. Market orders never rest: GTC on a market order behaves as IOC. */
export const TimeInForce = { GTC: 0, IOC: 1, FOK: 2 } as const
export type TimeInForce = (typeof TimeInForce)[keyof typeof TimeInForce]
/** Kind of an event in the event buffer. */
export const EventKind = { accepted: 1, rejected: 2, trade: 3, done: 4, moved: 5 } as const
export type EventKind = (typeof EventKind)[keyof typeof EventKind]
/** Reason of a `rejected` event (also the return value of a rejected command). */
export const RejectReason = {
  invalid_price: 1,
  invalid_qty: 2,
  duplicate_id: 3,
  unknown_order: 4,
  would_cross: 5
} as const
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason]
/** Reason of a `done` event; also the final status of a finished order. */
export const DoneReason = { filled: 1, canceled: 2, expired: 3, killed: 4 } as const
export type DoneReason = (typeof DoneReason)[keyof typeof DoneReason]

export const SIDE_NAMES = ["buy", "sell"] as const
export const REJECT_NAMES = [
  "",
  "invalid_price",
  "invalid_qty",
  "duplicate_id",
  "unknown_order",
  "would_cross"
] as const
export const DONE_NAMES = ["", "filled", "canceled", "expired", "killed"] as const

// Local copies: module constants inline better than property loads in the hot path.
const BUY = 0
const LIMIT = 0
const GTC = 0
const FOK = 2
const EV_ACCEPTED = 1
const EV_REJECTED = 2
const EV_TRADE = 3
const EV_DONE = 4
const EV_MOVED = 5
const R_INVALID_PRICE = 1
const R_INVALID_QTY = 2
const R_DUPLICATE_ID = 3
const R_UNKNOWN_ORDER = 4
const R_WOULD_CROSS = 5
const D_FILLED = 1
const D_CANCELED = 2
const D_EXPIRED = 3
const D_KILLED = 4

// ---- public types ------------------------------------------------------------------------------

/** Per-symbol configuration: decimal strings. */
export interface BookConfig {
  /** Price increment, e.g. "0.01". Prices must be positive multiples of it. */
  readonly tick: string
  /** Quantity increment, e.g. "1" or "0.001". Quantities must be positive multiples of it. */
  readonly lot: string
  /** Smallest order quantity (default: one lot). */
  readonly minQty?: string | undefined
  /** Largest order quantity (default: 2^48-1 lots). */
  readonly maxQty?: string | undefined
}

/** A place command at the decimal edge. */
export interface PlaceCommand {
  readonly id: string
  readonly account?: string | undefined
  readonly side: "buy" | "sell"
  readonly type?: "limit" | "market" | undefined
  /** Required for limit orders; ignored for market orders. */
  readonly price?: string | number | undefined
  readonly qty: string | number | undefined
  /** Default GTC. */
  readonly tif?: "GTC" | "IOC" | "FOK" | undefined
  readonly postOnly?: boolean | undefined
}

/** Status of an order known to the book. Finished orders keep only their final status and filled quantity. */
export interface OrderStatus {
  readonly id: string
  readonly status: "open" | "filled" | "canceled" | "expired" | "killed"
  readonly openQty: string
  readonly filledQty: string
  /** Present while the order rests. */
  readonly side?: "buy" | "sell"
  readonly price?: string
  readonly account?: string
}

/** One aggregated price level: [price, summed open quantity] as decimal strings. */
export type DepthLevel = readonly [price: string, qty: string]

export interface Depth {
  readonly bids: ReadonlyArray<DepthLevel>
  readonly asks: ReadonlyArray<DepthLevel>
}

/**
 * A resting order in a snapshot: id, account, side (0 buy, 1 sell), price in ticks, open lots,
 * filled lots, postOnly (0/1).
 */
export type SnapshotOrder = readonly [string, string, number, number, number, number, number]

/**
 * A JSON-serialisable image of a book. `orders` lists bids best to worst then asks best to worst,
 * FIFO within each level, so restoring re-creates the exact queues. `finishedIds[i]` is an id that
 * can never be used again and `finishedCodes[i]` its packed final state (filled lots * 8 + reason).
 */
export interface BookSnapshot {
  readonly version: 1
  readonly config: { readonly tick: string; readonly lot: string; readonly minQty: string; readonly maxQty: string }
  readonly tradeSeq: number
  readonly orders: ReadonlyArray<SnapshotOrder>
  readonly finishedIds: ReadonlyArray<string>
  readonly finishedCodes: ReadonlyArray<number>
}

// ---- the book ----------------------------------------------------------------------------------

/**
 * A limit order book for one symbol.
 *
 * Commands (`place`, `cancel`, `move`, or their integer forms `placeRaw`, `moveRaw`) return 0 when
 * accepted or a RejectReason code, and fill the event buffer: read `eventCount` events through
 * `eventKind`, `eventOrder`, `eventTaker`, `eventPrice`, `eventQty`, `eventReason`, `eventTradeId`
 * and `orderId(slot)` / `rejectedId` before the next command (slots in events stay valid until then;
 * the arrays may be replaced when they grow, so read the fields afresh after each command).
 * A rejected command changes nothing. Ids are unique for the book's lifetime, finished ones included.
 */
export class OrderBook {
  readonly priceUnit: DecimalUnit
  readonly qtyUnit: DecimalUnit
  // Mutable: an admin may change a symbol's quantity limits while its book runs (they apply to new commands).
  minLots: number
  maxLots: number
  config: BookSnapshot["config"]

  // Event buffer (read-only for callers).
  /** Number of events written by the last command. */
  eventCount = 0
  /** EventKind per event. */
  eventKind: Uint8Array
  /** Order slot the event is about (maker for trades); -1 for `rejected` (see `rejectedId`). */
  eventOrder: Int32Array
  /** Taker slot for trades. */
  eventTaker: Int32Array
  /** Trade price in ticks. */
  eventPrice: Float64Array
  /** Trade quantity in lots; for `done`, the quantity that leaves the book unfilled (0 for filled). */
  eventQty: Float64Array
  /** RejectReason for `rejected`, DoneReason for `done`. */
  eventReason: Uint8Array
  /** Trade id (1, 2, ... over the book's life) for trades; 0 for other events. */
  eventTradeId: Float64Array
  /** Id of the last command (the id a `rejected` event refers to). */
  rejectedId = ""
  /** Number of trades ever made; the last trade's id. */
  tradeSeq = 0

  private evCap: number

  // Orders, by slot.
  private ordCap: number
  private ordPrice: Float64Array
  private ordOpen: Float64Array
  private ordFilled: Float64Array
  private ordNext: Int32Array
  private ordPrev: Int32Array
  private ordLevel: Int32Array
  private ordSide: Uint8Array
  private ordPostOnly: Uint8Array
  private ordId: Array<string>
  private ordAccount: Array<string>
  private freeSlots: Int32Array
  private freeCount = 0
  private nextSlot = 0
  // Slots finished by the current command: released at the start of the next one so that the
  // event buffer can still name them.
  private pendingFree: Int32Array
  private pendingCount = 0

  // Levels, by level index.
  private lvlCap: number
  private lvlPrice: Float64Array
  private lvlQty: Float64Array
  private lvlHead: Int32Array
  private lvlTail: Int32Array
  private lvlCount: Int32Array
  private lvlFree: Int32Array
  private lvlFreeCount = 0
  private lvlNext = 0

  // Per side: level keys ascending (key = price for bids, -price for asks, so the best is last) and
  // the level index at each position.
  private sideKeys: [Float64Array, Float64Array]
  private sideLvls: [Int32Array, Int32Array]
  private sideLen: Int32Array
  // Non-empty levels per side (sideLen counts the empty ones kept in place too).
  private sideLive: Int32Array
  // Price -> level for prices within [winBase, winBase + window): finds an existing level without a
  // search. A price has at most one level entry at a time (the book never crosses and an emptied
  // level is dropped when it surfaces at the top), so one table serves both sides.
  private winLevels: Int32Array
  private winBase = -1
  private winMisses = 0

  // Resting orders: id -> slot. Kept apart from the (ever growing) finished ids so that the lookups
  // of cancels and moves hit a small, cache-resident table.
  private live = new Map<string, number>()
  // Finished orders: id -> filled lots * 8 + DoneReason. Their ids can never be used again.
  private finished = new Map<string, number>()

  /**
   * `initialOrders` presizes the order arrays (they grow by doubling). `priceWindow` is the number of
   * ticks around the market for which levels are found by direct indexing (4 bytes per tick); prices
   * outside it are found by binary search.
   */
  constructor(config: BookConfig, initialOrders = 1024, priceWindow = 8192) {
    this.priceUnit = new DecimalUnit(config.tick)
    this.qtyUnit = new DecimalUnit(config.lot)
    const minLots = config.minQty === undefined ? 1 : this.qtyUnit.toUnits(config.minQty)
    const maxLots = config.maxQty === undefined ? MAX_UNITS : this.qtyUnit.toUnits(config.maxQty)
    if (minLots < 1) throw new RangeError(`minQty "${config.minQty}" is not a positive multiple of lot ${config.lot}`)
    if (maxLots < minLots) throw new RangeError(`maxQty "${config.maxQty}" is invalid or below minQty`)
    this.minLots = minLots
    this.maxLots = maxLots
    this.config = {
      tick: config.tick,
      lot: config.lot,
      minQty: this.qtyUnit.format(minLots),
      maxQty: this.qtyUnit.format(maxLots)
    }

    const oc = Math.max(16, initialOrders | 0)
    this.ordCap = oc
    this.ordPrice = new Float64Array(oc)
    this.ordOpen = new Float64Array(oc)
    this.ordFilled = new Float64Array(oc)
    this.ordNext = new Int32Array(oc)
    this.ordPrev = new Int32Array(oc)
    this.ordLevel = new Int32Array(oc)
    this.ordSide = new Uint8Array(oc)
    this.ordPostOnly = new Uint8Array(oc)
    this.ordId = new Array<string>(oc).fill("")
    this.ordAccount = new Array<string>(oc).fill("")
    this.freeSlots = new Int32Array(oc)
    this.pendingFree = new Int32Array(oc)

    const lc = 256
    this.lvlCap = lc
    this.lvlPrice = new Float64Array(lc)
    this.lvlQty = new Float64Array(lc)
    this.lvlHead = new Int32Array(lc)
    this.lvlTail = new Int32Array(lc)
    this.lvlCount = new Int32Array(lc)
    this.lvlFree = new Int32Array(lc)
    this.sideKeys = [new Float64Array(lc), new Float64Array(lc)]
    this.sideLvls = [new Int32Array(lc), new Int32Array(lc)]
    this.sideLen = new Int32Array(2)
    this.sideLive = new Int32Array(2)
    this.winLevels = new Int32Array(Math.max(64, priceWindow | 0)).fill(-1)

    const ec = 64
    this.evCap = ec
    this.eventKind = new Uint8Array(ec)
    this.eventOrder = new Int32Array(ec)
    this.eventTaker = new Int32Array(ec)
    this.eventPrice = new Float64Array(ec)
    this.eventQty = new Float64Array(ec)
    this.eventReason = new Uint8Array(ec)
    this.eventTradeId = new Float64Array(ec)
  }

  // ---- decimal edge ----------------------------------------------------------------------------

  /** Places an order given decimal strings. Returns 0 if accepted, else the RejectReason. */
  place(cmd: PlaceCommand): number {
    const market = cmd.type === "market"
    const price = market ? 0 : cmd.price === undefined ? -1 : this.priceUnit.toUnits(cmd.price)
    const qty = cmd.qty === undefined ? -1 : this.qtyUnit.toUnits(cmd.qty)
    const tif = cmd.tif === "FOK" ? 2 : cmd.tif === "IOC" ? 1 : 0
    return this.placeRaw(
      cmd.id,
      cmd.account ?? "",
      cmd.side === "sell" ? 1 : 0,
      market ? 1 : 0,
      tif,
      cmd.postOnly === true,
      price,
      qty
    )
  }

  /** Moves an order to a new decimal price and optionally a new open quantity. Returns 0 or a RejectReason. */
  move(id: string, price: string | number | undefined, qty?: string | number | undefined): number {
    const p = price === undefined ? 0 : this.priceUnit.toUnits(price)
    const q = qty === undefined ? 0 : this.qtyUnit.toUnits(qty)
    return this.moveRaw(id, p, q)
  }

  // ---- integer commands ------------------------------------------------------------------------

  /**
   * Places an order with the price in ticks and the quantity in lots (price is ignored for market
   * orders). Returns 0 if accepted, else the RejectReason; events are in the buffer.
   */
  placeRaw(
    id: string,
    account: string,
    side: number,
    type: number,
    tif: number,
    postOnly: boolean,
    price: number,
    qty: number
  ): number {
    this.begin(id)
    let limit: number
    if (type === LIMIT) {
      if (!(price >= 1 && price <= MAX_UNITS && Math.floor(price) === price)) return this.reject(R_INVALID_PRICE)
      limit = price
    } else {
      // A market order is a limit order at the far end of the book.
      limit = side === BUY ? Number.POSITIVE_INFINITY : 0
    }
    if (!(qty >= this.minLots && qty <= this.maxLots && Math.floor(qty) === qty)) return this.reject(R_INVALID_QTY)
    if (this.live.has(id) || this.finished.has(id)) return this.reject(R_DUPLICATE_ID)
    if (postOnly && this.crosses(side, limit)) return this.reject(R_WOULD_CROSS)

    const slot = this.allocSlot()
    this.ordPrice[slot] = type === LIMIT ? price : 0
    this.ordOpen[slot] = qty
    this.ordFilled[slot] = 0
    this.ordSide[slot] = side
    this.ordPostOnly[slot] = postOnly ? 1 : 0
    this.ordLevel[slot] = -1
    this.ordId[slot] = id
    this.ordAccount[slot] = account
    this.live.set(id, slot)
    this.emit(EV_ACCEPTED, slot, -1, 0, 0, 0)

    if (tif === FOK && !this.canFill(side, limit, qty)) {
      this.finish(slot, D_KILLED, qty)
      return 0
    }
    const left = this.match(slot, side, limit, qty)
    if (left === 0) {
      this.ordOpen[slot] = 0
      this.finish(slot, D_FILLED, 0)
    } else if (type === LIMIT && tif === GTC) {
      this.ordOpen[slot] = left
      this.rest(slot, side, price)
    } else {
      this.ordOpen[slot] = 0
      this.finish(slot, D_EXPIRED, left)
    }
    return 0
  }

  /** Cancels a resting order. Returns 0 or `unknown_order` (also for finished orders). */
  cancel(id: string): number {
    this.begin(id)
    const slot = this.live.get(id)
    if (slot === undefined) return this.reject(R_UNKNOWN_ORDER)
    const open = this.ordOpen[slot]
    this.unlink(slot)
    this.ordOpen[slot] = 0
    this.finish(slot, D_CANCELED, open)
    return 0
  }

  /**
   * Moves a resting order: `price` in ticks (0 keeps the price), `qty` the new open quantity in
   * lots (0 keeps it). A new price loses time priority and may trade at once; at the same price a
   * smaller quantity keeps priority and a larger one goes to the back of the level. A post-only
   * order that would cross at its new price is rejected with `would_cross`.
   */
  moveRaw(id: string, price: number, qty: number): number {
    this.begin(id)
    if (price !== 0 && !(price >= 1 && price <= MAX_UNITS && Math.floor(price) === price)) {
      return this.reject(R_INVALID_PRICE)
    }
    if (qty !== 0 && !(qty >= this.minLots && qty <= this.maxLots && Math.floor(qty) === qty)) {
      return this.reject(R_INVALID_QTY)
    }
    const slot = this.live.get(id)
    if (slot === undefined) return this.reject(R_UNKNOWN_ORDER)
    const side = this.ordSide[slot]
    const oldPrice = this.ordPrice[slot]
    const open = this.ordOpen[slot]
    const newPrice = price === 0 ? oldPrice : price
    const newQty = qty === 0 ? open : qty

    if (newPrice === oldPrice) {
      this.emit(EV_MOVED, slot, -1, 0, 0, 0)
      if (newQty !== open) {
        const lvl = this.ordLevel[slot]
        this.lvlQty[lvl] += newQty - open
        this.ordOpen[slot] = newQty
        if (newQty > open && this.lvlTail[lvl] !== slot) {
          this.detach(slot, lvl)
          this.append(slot, lvl)
        }
      }
      return 0
    }
    if (this.ordPostOnly[slot] === 1 && this.crosses(side, newPrice)) return this.reject(R_WOULD_CROSS)
    this.emit(EV_MOVED, slot, -1, 0, 0, 0)
    this.unlink(slot)
    this.ordPrice[slot] = newPrice
    const left = this.match(slot, side, newPrice, newQty)
    if (left === 0) {
      this.ordOpen[slot] = 0
      this.finish(slot, D_FILLED, 0)
    } else {
      this.ordOpen[slot] = left
      this.rest(slot, side, newPrice)
    }
    return 0
  }

  // ---- queries ---------------------------------------------------------------------------------

  /** Id of the order in `slot` (valid for slots named by events of the last command). */
  orderId(slot: number): string {
    return this.ordId[slot]
  }

  /** Account of the order in `slot`. */
  orderAccount(slot: number): string {
    return this.ordAccount[slot]
  }

  /** Number of resting orders. */
  get restingCount(): number {
    return this.nextSlot - this.freeCount - this.pendingCount
  }

  /** Number of price levels on a side. */
  levelCount(side: Side): number {
    return this.sideLive[side]
  }

  /** Best price in ticks on a side, or 0 when the side is empty. */
  bestPrice(side: Side): number {
    const len = this.sideLen[side]
    return len === 0 ? 0 : this.lvlPrice[this.sideLvls[side][len - 1]]
  }

  /**
   * Writes up to `n` aggregated levels of `side`, best first, into `prices` (ticks) and `qtys`
   * (lots); returns how many were written.
   */
  depthInto(side: Side, n: number, prices: Float64Array, qtys: Float64Array): number {
    const lvls = this.sideLvls[side]
    const max = Math.min(n, prices.length, qtys.length)
    let count = 0
    for (let i = this.sideLen[side] - 1; i >= 0 && count < max; i--) {
      const lvl = lvls[i]
      if (this.lvlHead[lvl] === -1) continue
      prices[count] = this.lvlPrice[lvl]
      qtys[count] = this.lvlQty[lvl]
      count++
    }
    return count
  }

  /** Aggregated levels as decimal strings, best first (all levels when `n` is omitted). */
  depth(n = Number.POSITIVE_INFINITY): Depth {
    return { bids: this.depthSide(0, n), asks: this.depthSide(1, n) }
  }

  /** Status of an order, or undefined for an id the book has never accepted. */
  status(id: string): OrderStatus | undefined {
    const v = this.live.get(id)
    if (v === undefined) {
      const packed = this.finished.get(id)
      if (packed === undefined) return undefined
      const reason = packed % 8
      return {
        id,
        status: DONE_NAMES[reason] as OrderStatus["status"],
        openQty: this.qtyUnit.format(0),
        filledQty: this.qtyUnit.format((packed - reason) / 8)
      }
    }
    return {
      id,
      status: "open",
      openQty: this.qtyUnit.format(this.ordOpen[v]),
      filledQty: this.qtyUnit.format(this.ordFilled[v]),
      side: SIDE_NAMES[this.ordSide[v]],
      price: this.priceUnit.format(this.ordPrice[v]),
      account: this.ordAccount[v]
    }
  }

  /** Number of finished orders whose final state the book still holds. */
  get finishedCount(): number {
    return this.finished.size
  }

  /**
   * Forgets the final state of the `count` orders that finished first (`status` no longer knows them). A
   * forgotten id is no longer refused as `duplicate_id`: only for callers that never reuse ids, such as the
   * symbol shard, whose ids are a counter. Keeps the memory of a long-lived book bounded.
   */
  forgetOldestFinished(count: number): void {
    if (count <= 0) return
    let left = count
    for (const id of this.finished.keys()) {
      this.finished.delete(id)
      if (--left === 0) break
    }
  }

  /** Visits resting orders of a side, best level first and FIFO within a level. */
  forEachResting(
    side: Side,
    f: (id: string, account: string, price: number, open: number, filled: number, postOnly: boolean) => void
  ): void {
    const lvls = this.sideLvls[side]
    for (let i = this.sideLen[side] - 1; i >= 0; i--) {
      const lvl = lvls[i]
      for (let o = this.lvlHead[lvl]; o !== -1; o = this.ordNext[o]) {
        f(
          this.ordId[o],
          this.ordAccount[o],
          this.ordPrice[o],
          this.ordOpen[o],
          this.ordFilled[o],
          this.ordPostOnly[o] === 1
        )
      }
    }
  }

  // ---- snapshot / restore ----------------------------------------------------------------------

  /** A JSON-serialisable image of the whole book; `OrderBook.restore` rebuilds it exactly. */
  snapshot(): BookSnapshot {
    const orders: Array<SnapshotOrder> = []
    for (let side = 0; side < 2; side++) {
      this.forEachResting(side as Side, (id, account, price, open, filled, postOnly) => {
        orders.push([id, account, side, price, open, filled, postOnly ? 1 : 0])
      })
    }
    const finishedIds: Array<string> = []
    const finishedCodes: Array<number> = []
    for (const [id, packed] of this.finished) {
      finishedIds.push(id)
      finishedCodes.push(packed)
    }
    return { version: 1, config: this.config, tradeSeq: this.tradeSeq, orders, finishedIds, finishedCodes }
  }

  /**
   * Sets the quantity limits for commands from now on (resting orders keep theirs); lots as units of `lot`.
   * Throws a RangeError for limits that are not positive multiples of the lot or cross; nothing is changed then.
   */
  setQtyLimits(minQty: string | undefined, maxQty: string | undefined): void {
    const minLots = minQty === undefined ? 1 : this.qtyUnit.toUnits(minQty)
    const maxLots = maxQty === undefined ? MAX_UNITS : this.qtyUnit.toUnits(maxQty)
    if (minLots < 1) throw new RangeError(`minQty "${minQty}" is not a positive multiple of lot ${this.config.lot}`)
    if (maxLots < minLots) throw new RangeError(`maxQty "${maxQty}" is invalid or below minQty`)
    this.setLotLimits(minLots, maxLots)
  }

  /** Sets the limits in lots (already checked). */
  setLotLimits(minLots: number, maxLots: number): void {
    this.minLots = minLots
    this.maxLots = maxLots
    this.config = {
      tick: this.config.tick,
      lot: this.config.lot,
      minQty: this.qtyUnit.format(minLots),
      maxQty: this.qtyUnit.format(maxLots)
    }
  }

  /** Rebuilds a book from `snapshot()`; later commands produce the same events as on the original. */
  static restore(snap: BookSnapshot, priceWindow?: number): OrderBook {
    if (snap.version !== 1) throw new Error(`unsupported snapshot version ${String(snap.version)}`)
    const orders = snap.orders
    const book = new OrderBook(snap.config, Math.max(1024, orders.length * 2), priceWindow)
    book.tradeSeq = snap.tradeSeq
    // Levels are listed best first; re-create them worst first so that each new level goes on top
    // (an append) instead of below all the others. Orders within a level keep their FIFO order.
    let end = orders.length
    while (end > 0) {
      let start = end - 1
      while (start > 0 && orders[start - 1][2] === orders[end - 1][2] && orders[start - 1][3] === orders[end - 1][3]) {
        start--
      }
      for (let i = start; i < end; i++) {
        const [id, account, side, price, open, filled, postOnly] = orders[i]
        const slot = book.allocSlot()
        book.ordPrice[slot] = price
        book.ordOpen[slot] = open
        book.ordFilled[slot] = filled
        book.ordSide[slot] = side
        book.ordPostOnly[slot] = postOnly
        book.ordId[slot] = id
        book.ordAccount[slot] = account
        book.live.set(id, slot)
        book.rest(slot, side, price)
      }
      end = start
    }
    const ids = snap.finishedIds
    const codes = snap.finishedCodes
    for (let i = 0; i < ids.length; i++) book.finished.set(ids[i], codes[i])
    return book
  }

  // ---- internals -------------------------------------------------------------------------------

  private begin(id: string): void {
    this.eventCount = 0
    this.rejectedId = id
    const n = this.pendingCount
    if (n !== 0) {
      const pending = this.pendingFree
      const free = this.freeSlots
      let f = this.freeCount
      for (let i = 0; i < n; i++) free[f++] = pending[i]
      this.freeCount = f
      this.pendingCount = 0
    }
  }

  private reject(reason: number): number {
    this.emit(EV_REJECTED, -1, -1, 0, 0, reason)
    return reason
  }

  private emit(kind: number, order: number, taker: number, price: number, qty: number, reason: number): void {
    const n = this.eventCount
    if (n === this.evCap) this.growEvents()
    this.eventKind[n] = kind
    this.eventOrder[n] = order
    this.eventTaker[n] = taker
    this.eventPrice[n] = price
    this.eventQty[n] = qty
    this.eventReason[n] = reason
    this.eventTradeId[n] = 0
    this.eventCount = n + 1
  }

  private emitTrade(maker: number, taker: number, price: number, qty: number): void {
    const n = this.eventCount
    if (n === this.evCap) this.growEvents()
    this.eventKind[n] = EV_TRADE
    this.eventOrder[n] = maker
    this.eventTaker[n] = taker
    this.eventPrice[n] = price
    this.eventQty[n] = qty
    this.eventReason[n] = 0
    this.eventTradeId[n] = ++this.tradeSeq
    this.eventCount = n + 1
  }

  /** Marks an order finished: its id stays reserved, its slot is released at the next command. */
  private finish(slot: number, reason: number, leftQty: number): void {
    const id = this.ordId[slot]
    this.live.delete(id)
    this.finished.set(id, this.ordFilled[slot] * 8 + reason)
    this.ordLevel[slot] = -1
    this.pendingFree[this.pendingCount++] = slot
    this.emit(EV_DONE, slot, -1, 0, leftQty, reason)
  }

  /** Would an order on `side` at `limit` trade against the opposite best? */
  private crosses(side: number, limit: number): boolean {
    const opp = side ^ 1
    const len = this.sideLen[opp]
    if (len === 0) return false
    const best = this.lvlPrice[this.sideLvls[opp][len - 1]]
    return side === BUY ? best <= limit : best >= limit
  }

  /** Is there at least `qty` on the opposite side at prices `limit` or better? */
  private canFill(side: number, limit: number, qty: number): boolean {
    const opp = side ^ 1
    const lvls = this.sideLvls[opp]
    let need = qty
    for (let i = this.sideLen[opp] - 1; i >= 0; i--) {
      const lvl = lvls[i]
      const px = this.lvlPrice[lvl]
      if (side === BUY ? px > limit : px < limit) return false
      need -= this.lvlQty[lvl]
      if (need <= 0) return true
    }
    return false
  }

  /**
   * Matches `qty` of the taker in `taker` against the opposite side up to `limit`; returns what is
   * left. Makers are filled in price-time order at their own price.
   */
  private match(taker: number, side: number, limit: number, qty: number): number {
    const opp = side ^ 1
    const lvls = this.sideLvls[opp]
    let len = this.sideLen[opp]
    const lvlPrice = this.lvlPrice
    const lvlQty = this.lvlQty
    const lvlHead = this.lvlHead
    const ordOpen = this.ordOpen
    const ordFilled = this.ordFilled
    const ordNext = this.ordNext
    let left = qty
    while (left > 0 && len > 0) {
      const lvl = lvls[len - 1]
      const px = lvlPrice[lvl]
      if (side === BUY ? px > limit : px < limit) break
      let o = lvlHead[lvl]
      let removed = 0
      while (o !== -1) {
        const open = ordOpen[o]
        if (open > left) {
          ordOpen[o] = open - left
          ordFilled[o] += left
          lvlQty[lvl] -= left
          this.emitTrade(o, taker, px, left)
          left = 0
          break
        }
        ordOpen[o] = 0
        ordFilled[o] += open
        lvlQty[lvl] -= open
        left -= open
        removed++
        this.emitTrade(o, taker, px, open)
        const next = ordNext[o]
        this.finish(o, D_FILLED, 0)
        o = next
        if (left === 0) break
      }
      lvlHead[lvl] = o
      this.lvlCount[lvl] -= removed
      if (o === -1) {
        this.lvlTail[lvl] = -1
        this.sideLive[opp]--
        this.freeLevel(lvl)
        len--
        // Keep the top non-empty: drop empty levels that surface.
        while (len > 0 && lvlHead[lvls[len - 1]] === -1) this.freeLevel(lvls[--len])
      } else {
        this.ordPrev[o] = -1
      }
    }
    this.sideLen[opp] = len
    ordFilled[taker] += qty - left
    return left
  }

  /** Puts an order (ordOpen already set) at the back of its price level, creating the level. */
  private rest(slot: number, side: number, price: number): void {
    const lvl = this.levelAt(side, price)
    if (this.lvlHead[lvl] === -1) this.sideLive[side]++
    this.lvlQty[lvl] += this.ordOpen[slot]
    this.append(slot, lvl)
  }

  private append(slot: number, lvl: number): void {
    const tail = this.lvlTail[lvl]
    this.ordPrev[slot] = tail
    this.ordNext[slot] = -1
    if (tail === -1) this.lvlHead[lvl] = slot
    else this.ordNext[tail] = slot
    this.lvlTail[lvl] = slot
    this.lvlCount[lvl]++
    this.ordLevel[slot] = lvl
  }

  /** Takes an order out of its level's queue (the level's quantity is the caller's business). */
  private detach(slot: number, lvl: number): void {
    const prev = this.ordPrev[slot]
    const next = this.ordNext[slot]
    if (prev === -1) this.lvlHead[lvl] = next
    else this.ordNext[prev] = next
    if (next === -1) this.lvlTail[lvl] = prev
    else this.ordPrev[next] = prev
    this.lvlCount[lvl]--
  }

  /** Removes a resting order from the book, dropping its level if it empties. */
  private unlink(slot: number): void {
    const lvl = this.ordLevel[slot]
    this.detach(slot, lvl)
    this.lvlQty[lvl] -= this.ordOpen[slot]
    this.ordLevel[slot] = -1
    if (this.lvlHead[lvl] === -1) this.levelEmptied(this.ordSide[slot], lvl)
  }

  /** Index of the level at `price` on `side`, created (and inserted in order) if missing. */
  private levelAt(side: number, price: number): number {
    const win = this.winLevels
    const w = price - this.winBase
    if (w >= 0 && w < win.length) {
      const hit = win[w]
      if (hit !== -1) return hit
    } else if (++this.winMisses > win.length >> 3) {
      this.recenter(price)
    }
    const key = side === BUY ? price : -price
    let keys = this.sideKeys[side]
    let lvls = this.sideLvls[side]
    const len = this.sideLen[side]
    // Most insertions land near the best price: check the top before searching.
    let lo: number
    if (len === 0 || keys[len - 1] < key) {
      lo = len
    } else {
      lo = 0
      let hi = len
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (keys[mid] < key) lo = mid + 1
        else hi = mid
      }
      if (keys[lo] === key) return lvls[lo]
    }
    if (len === keys.length) {
      this.growSide(side)
      keys = this.sideKeys[side]
      lvls = this.sideLvls[side]
    }
    if (lo < len) {
      keys.copyWithin(lo + 1, lo, len)
      lvls.copyWithin(lo + 1, lo, len)
    }
    const lvl = this.allocLevel()
    this.lvlPrice[lvl] = price
    this.lvlQty[lvl] = 0
    this.lvlHead[lvl] = -1
    this.lvlTail[lvl] = -1
    this.lvlCount[lvl] = 0
    keys[lo] = key
    lvls[lo] = lvl
    this.sideLen[side] = len + 1
    if (this.winBase === -1) this.winBase = Math.max(0, price - (win.length >> 1))
    const wi = price - this.winBase
    if (wi >= 0 && wi < win.length) win[wi] = lvl
    return lvl
  }

  /** Moves the price window to centre on the market (or `price` when a side is empty) and refills it. */
  private recenter(price: number): void {
    const win = this.winLevels
    const bid = this.bestPrice(0)
    const ask = this.bestPrice(1)
    const center = bid !== 0 && ask !== 0 ? Math.floor((bid + ask) / 2) : bid !== 0 ? bid : ask !== 0 ? ask : price
    this.winBase = Math.max(0, center - (win.length >> 1))
    this.winMisses = 0
    win.fill(-1)
    for (let side = 0; side < 2; side++) {
      const lvls = this.sideLvls[side]
      for (let i = this.sideLen[side] - 1; i >= 0; i--) {
        const lvl = lvls[i]
        const wi = this.lvlPrice[lvl] - this.winBase
        if (wi >= 0 && wi < win.length) win[wi] = lvl
      }
    }
  }

  /** A level lost its last order outside matching: drop it if on top, else leave it empty in place. */
  private levelEmptied(side: number, lvl: number): void {
    const live = --this.sideLive[side]
    const lvls = this.sideLvls[side]
    let len = this.sideLen[side]
    if (lvls[len - 1] === lvl) {
      const lvlHead = this.lvlHead
      this.freeLevel(lvl)
      len--
      while (len > 0 && lvlHead[lvls[len - 1]] === -1) this.freeLevel(lvls[--len])
      this.sideLen[side] = len
    } else if (len - live > 4096 && len - live > 2 * live) {
      this.compact(side)
    }
  }

  /** Sweeps the empty levels out of a side. */
  private compact(side: number): void {
    const keys = this.sideKeys[side]
    const lvls = this.sideLvls[side]
    const len = this.sideLen[side]
    let j = 0
    for (let i = 0; i < len; i++) {
      const lvl = lvls[i]
      if (this.lvlHead[lvl] === -1) {
        this.freeLevel(lvl)
      } else {
        keys[j] = keys[i]
        lvls[j] = lvl
        j++
      }
    }
    this.sideLen[side] = j
  }

  private allocSlot(): number {
    if (this.freeCount > 0) return this.freeSlots[--this.freeCount]
    if (this.nextSlot === this.ordCap) this.growOrders()
    return this.nextSlot++
  }

  private allocLevel(): number {
    if (this.lvlFreeCount > 0) return this.lvlFree[--this.lvlFreeCount]
    if (this.lvlNext === this.lvlCap) this.growLevels()
    return this.lvlNext++
  }

  private freeLevel(lvl: number): void {
    const w = this.lvlPrice[lvl] - this.winBase
    if (w >= 0 && w < this.winLevels.length) this.winLevels[w] = -1
    this.lvlFree[this.lvlFreeCount++] = lvl
  }

  private growOrders(): void {
    const cap = this.ordCap * 2
    this.ordPrice = growF64(this.ordPrice, cap)
    this.ordOpen = growF64(this.ordOpen, cap)
    this.ordFilled = growF64(this.ordFilled, cap)
    this.ordNext = growI32(this.ordNext, cap)
    this.ordPrev = growI32(this.ordPrev, cap)
    this.ordLevel = growI32(this.ordLevel, cap)
    this.ordSide = growU8(this.ordSide, cap)
    this.ordPostOnly = growU8(this.ordPostOnly, cap)
    for (let i = this.ordCap; i < cap; i++) {
      this.ordId.push("")
      this.ordAccount.push("")
    }
    this.freeSlots = growI32(this.freeSlots, cap)
    this.pendingFree = growI32(this.pendingFree, cap)
    this.ordCap = cap
  }

  private growLevels(): void {
    const cap = this.lvlCap * 2
    this.lvlPrice = growF64(this.lvlPrice, cap)
    this.lvlQty = growF64(this.lvlQty, cap)
    this.lvlHead = growI32(this.lvlHead, cap)
    this.lvlTail = growI32(this.lvlTail, cap)
    this.lvlCount = growI32(this.lvlCount, cap)
    this.lvlFree = growI32(this.lvlFree, cap)
    this.lvlCap = cap
  }

  private growSide(side: number): void {
    const cap = this.sideKeys[side].length * 2
    this.sideKeys[side] = growF64(this.sideKeys[side], cap)
    this.sideLvls[side] = growI32(this.sideLvls[side], cap)
  }

  private growEvents(): void {
    const cap = this.evCap * 2
    this.eventKind = growU8(this.eventKind, cap)
    this.eventOrder = growI32(this.eventOrder, cap)
    this.eventTaker = growI32(this.eventTaker, cap)
    this.eventPrice = growF64(this.eventPrice, cap)
    this.eventQty = growF64(this.eventQty, cap)
    this.eventReason = growU8(this.eventReason, cap)
    this.eventTradeId = growF64(this.eventTradeId, cap)
    this.evCap = cap
  }

  private depthSide(side: number, n: number): Array<DepthLevel> {
    const out: Array<DepthLevel> = []
    const lvls = this.sideLvls[side]
    const len = this.sideLen[side]
    for (let i = len - 1; i >= 0 && out.length < n; i--) {
      const lvl = lvls[i]
      if (this.lvlHead[lvl] === -1) continue
      out.push([this.priceUnit.format(this.lvlPrice[lvl]), this.qtyUnit.format(this.lvlQty[lvl])])
    }
    return out
  }
}

const growF64 = (a: Float64Array, cap: number): Float64Array => {
  const b = new Float64Array(cap)
  b.set(a)
  return b
}
const growI32 = (a: Int32Array, cap: number): Int32Array => {
  const b = new Int32Array(cap)
  b.set(a)
  return b
}
const growU8 = (a: Uint8Array, cap: number): Uint8Array => {
  const b = new Uint8Array(cap)
  b.set(a)
  return b
}
