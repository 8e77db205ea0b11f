// The shard's pure state machine around the engine: order ids, idempotency keys, the rows that must be
// written before an acknowledgement (journal commands, changed orders, new trades), and the shard
// snapshot. No Effect imports: the entity drives it and does the I/O.
//
// Determinism: the journal holds only accepted commands, with the integer price/qty the engine saw and the
// order id assigned here, so replaying a snapshot plus the journal rebuilds the same book, the same order
// ids and the same idempotency results.
import type { BookSnapshot } from "./engine/OrderBook.ts"
import { OrderBook, REJECT_NAMES } from "./engine/OrderBook.ts"

export interface SymbolConfig {
  readonly symbol: string
  readonly tick: string
  readonly lot: string
  readonly minQty?: string | undefined
  readonly maxQty?: string | undefined
}

export type OrderStatusName = "open" | "filled" | "canceled" | "expired" | "killed"
export type RejectName = "invalid_price" | "invalid_qty" | "duplicate_id" | "unknown_order" | "would_cross"

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
  | readonly [op: "c", id: number]
  | readonly [op: "m", id: number, price: number, qty: number]

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
  /** The shard snapshot to store with this batch, when one is due. */
  readonly snapshot: string | undefined
  readonly batch: PendingBatch
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

interface ShardSnapshot {
  readonly version: 1
  readonly seq: number
  readonly nextOrderId: number
  readonly book: BookSnapshot
  readonly open: ReadonlyArray<MetaTuple>
  readonly idem: ReadonlyArray<readonly [string, PlaceResult]>
}

const SIDES = ["buy", "sell"] as const
const TYPES = ["limit", "market"] as const
const TIFS = ["GTC", "IOC", "FOK"] as const
const STATUS_NAMES: ReadonlyArray<OrderStatusName> = ["open", "filled", "canceled", "expired", "killed"]

export type Outcome<A> =
  | { readonly ok: A; readonly batch: PendingBatch | undefined }
  | { readonly rejected: RejectName }

export class ShardCore {
  readonly symbol: string
  book: OrderBook
  /** Last sealed (or replayed) journal sequence number. */
  seq = 0
  nextOrderId = 1
  /** Commands since the last snapshot. */
  sinceSnapshot = 0
  pending = new PendingBatch()
  private open = new Map<string, OrderMeta>()
  private idem = new Map<string, { result: PlaceResult; batch: PendingBatch | undefined }>()
  private replaying = false

  constructor(config: SymbolConfig) {
    this.symbol = config.symbol
    this.book = new OrderBook({ tick: config.tick, lot: config.lot, minQty: config.minQty, maxQty: config.maxQty })
  }

  get pendingCount(): number {
    return this.pending.commands.length
  }

  // ---- commands --------------------------------------------------------------------------------

  place(input: PlaceInput): Outcome<PlaceResult> {
    const key = `${input.account}\u0000${input.clientOrderId}`
    const seen = this.idem.get(key)
    if (seen !== undefined) return { ok: seen.result, batch: seen.batch?.durable ? undefined : seen.batch }
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

  cancel(orderId: string): Outcome<OrderView> {
    const meta = this.open.get(orderId)
    if (meta === undefined) return { rejected: "unknown_order" }
    const code = this.applyCancel(Number(orderId))
    if (code !== 0) return { rejected: REJECT_NAMES[code] as RejectName }
    return { ok: this.view(meta), batch: this.pending }
  }

  move(orderId: string, price: string | undefined, qty: string | undefined): Outcome<MoveResult> {
    const meta = this.open.get(orderId)
    if (meta === undefined) return { rejected: "unknown_order" }
    const book = this.book
    const p = price === undefined ? 0 : book.priceUnit.toUnits(price)
    const q = qty === undefined ? 0 : book.qtyUnit.toUnits(qty)
    const fills: Array<Fill> = []
    const code = this.applyMove(Number(orderId), p, q, fills)
    if (code !== 0) return { rejected: REJECT_NAMES[code] as RejectName }
    return {
      ok: { orderId, status: STATUS_NAMES[meta.status], ...this.quantities(meta), trades: fills },
      batch: this.pending
    }
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
    return this.idem.get(`${account}\u0000${clientOrderId}`)?.result
  }

  // ---- batches ---------------------------------------------------------------------------------

  /** Freezes the pending batch for writing and starts a new one. `withSnapshot` adds a shard snapshot. */
  seal(withSnapshot: boolean): SealedBatch {
    const batch = this.pending
    this.pending = new PendingBatch()
    const seq = ++this.seq
    const orders: Array<OrderRow> = []
    for (const meta of batch.dirty.values()) orders.push(this.row(meta))
    const count = batch.commands.length
    this.sinceSnapshot += count
    let snapshot: string | undefined
    if (withSnapshot) {
      snapshot = JSON.stringify(this.snapshot())
      this.sinceSnapshot = 0
    }
    return {
      symbol: this.symbol,
      seq,
      commands: JSON.stringify(batch.commands),
      orders,
      trades: batch.trades,
      count,
      snapshot,
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
    return { version: 1, seq: this.seq, nextOrderId: this.nextOrderId, book: this.book.snapshot(), open, idem }
  }

  /** Restores a shard from `JSON.stringify(snapshot())`. */
  static restore(config: SymbolConfig, json: string): ShardCore {
    const snap = JSON.parse(json) as ShardSnapshot
    if (snap.version !== 1) throw new Error(`unsupported shard snapshot version ${String(snap.version)}`)
    const core = new ShardCore(config)
    core.book = OrderBook.restore(snap.book)
    core.seq = snap.seq
    core.nextOrderId = snap.nextOrderId
    for (const [id, account, clientOrderId, side, type, tif, postOnly, price, qty, filled] of snap.open) {
      core.open.set(id, { id, account, clientOrderId, side, type, tif, postOnly, price, qty, filled, status: 0 })
    }
    for (const [key, result] of snap.idem) core.idem.set(key, { result, batch: undefined })
    return core
  }

  /** Re-applies one durable journal row (its commands, JSON) with sequence number `seq`. */
  replay(seq: number, commandsJson: string): void {
    const commands = JSON.parse(commandsJson) as ReadonlyArray<JournalCommand>
    this.replaying = true
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
            code = this.applyCancel(c[1])
            break
          case "m":
            code = this.applyMove(c[1], c[2], c[3], undefined)
            break
        }
        if (code !== 0)
          throw new Error(`journal ${this.symbol}#${seq}: command ${JSON.stringify(c)} rejected on replay`)
      }
    } finally {
      this.replaying = false
    }
    this.seq = seq
    this.sinceSnapshot += commands.length
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
    this.idem.set(`${account}\u0000${clientOrderId}`, { result, batch: pending })
    if (pending !== undefined) {
      pending.commands.push(["p", id, account, clientOrderId, side, type, tif, postOnly, price, qty])
      pending.dirty.set(idText, meta)
    }
    return result
  }

  private applyCancel(id: number): number {
    const idText = String(id)
    const code = this.book.cancel(idText)
    if (code !== 0) return code
    const meta = this.open.get(idText)
    if (meta !== undefined) this.absorbEvents(meta, undefined)
    if (!this.replaying) this.pending.commands.push(["c", id])
    return 0
  }

  private applyMove(id: number, price: number, qty: number, fills: Array<Fill> | undefined): number {
    const idText = String(id)
    const meta = this.open.get(idText)
    const code = this.book.moveRaw(idText, price, qty)
    if (code !== 0 || meta === undefined) return code
    if (price !== 0) meta.price = price
    if (qty !== 0) meta.qty = meta.filled + qty
    if (!this.replaying) {
      this.pending.commands.push(["m", id, price, qty])
      this.pending.dirty.set(idText, meta)
    }
    this.absorbEvents(meta, fills)
    return 0
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
