/**
 * SymbolShard: one order book per trading symbol (entity id = symbol, e.g. `BTC-USDT`), sharded over the
 * runners. Every accepted command is acknowledged only once it is durable (the shard's group-commit journal),
 * so the RPCs themselves are volatile cluster messages: a retry after a timeout or a failover is safe because
 * places are idempotent on `(account, clientOrderId)`, and cancels and moves on `(orderId, requestId)` when the
 * client sends a `requestId`.
 *
 * Idempotency, exactly (the state is rebuilt from the journal, so it survives a restart or a failover):
 * - Place: a key seen before returns the first result (also inside one PlaceBatch). A rejected place is not
 *   remembered (it changed nothing): its retry is judged afresh.
 * - Cancel / Move with `requestId`: an accepted request is remembered under `(orderId, requestId)` (one key space
 *   per operation); a retry returns the first result and applies nothing. Without `requestId` nothing is
 *   remembered, as before: a second Cancel of the same order is `UnknownOrder`, a second Move applies again.
 * - Memory is bounded: each shard remembers the newest `TESSERA_SHARD_RECENT_KEYS` place keys (and as many
 *   request ids). A forgotten key is never applied twice: a place whose key may have been forgotten is checked
 *   against the `orders` table and refused with `InvalidOrder` reason `key_expired` if it was used; a cancel or
 *   move whose request id may have been forgotten is refused with `key_expired` while the order is open (a filter
 *   of forgotten keys decides "may", with rare false positives: send a new request id).
 *
 * Prices and quantities are decimal strings, checked against the symbol's tick and lot size.
 */
import { Contract, Ids } from "@tessera/contracts"
import { Schema } from "effect"
import { Entity } from "effect/cluster"
import { Rpc, RpcGroup } from "effect/rpc"

/** A symbol such as `BTC-USDT`: upper-case base and quote joined by a dash. */
export const SymbolId = Schema.String.check(Schema.isPattern(/^[A-Z0-9]{1,16}-[A-Z0-9]{1,16}$/)).pipe(
  Schema.brand("SymbolId")
)
export type SymbolId = typeof SymbolId.Type

/** A plain positive decimal string (`"100.25"`); tick/lot multiples are checked by the shard. */
export const DecimalString = Schema.String.check(Schema.isPattern(/^\d{1,20}(\.\d{1,18})?$/))

/**
 * Accounts, client order ids and request ids: 1-64 characters, no control characters (`Ids.Key`). The grammar keeps
 * U+0000 out, which PostgreSQL text refuses and which separates account and client order id in the place key.
 */
const Key = Ids.Key
/** Order ids are assigned by the shard: decimal digits, unique per symbol. */
export const OrderId = Schema.String.check(Schema.isPattern(/^\d{1,16}$/))

export const Side = Schema.Literals(["buy", "sell"])
export const OrderStatus = Schema.Literals(["open", "filled", "canceled", "expired", "killed"])
export const RejectReason = Schema.Literals([
  "invalid_price",
  "invalid_qty",
  "duplicate_id",
  "unknown_order",
  "would_cross",
  "missing_price",
  /** The idempotency key may be one the shard has forgotten (see the top of this file): nothing was applied. */
  "key_expired"
])
export type RejectReason = typeof RejectReason.Type

export const PlaceOrder = Schema.Struct({
  account: Key,
  /** Idempotency key within the account: a retried place returns the first result. */
  clientOrderId: Key,
  side: Side,
  type: Schema.optional(Schema.Literals(["limit", "market"])),
  /** Required for limit orders. */
  price: Schema.optional(DecimalString),
  qty: DecimalString,
  tif: Schema.optional(Schema.Literals(["GTC", "IOC", "FOK"])),
  postOnly: Schema.optional(Schema.Boolean)
})
export type PlaceOrder = typeof PlaceOrder.Type

export const Fill = Schema.Struct({
  tradeId: Schema.Int,
  makerOrderId: Schema.String,
  price: Schema.String,
  qty: Schema.String
})

export const PlaceResult = Schema.Struct({
  orderId: Schema.String,
  clientOrderId: Schema.String,
  status: OrderStatus,
  filledQty: Schema.String,
  openQty: Schema.String,
  trades: Schema.Array(Fill)
})
export type PlaceResult = typeof PlaceResult.Type

export const OrderView = Schema.Struct({
  orderId: Schema.String,
  account: Schema.optional(Schema.String),
  clientOrderId: Schema.optional(Schema.String),
  side: Schema.optional(Side),
  price: Schema.optional(Schema.NullOr(Schema.String)),
  status: OrderStatus,
  filledQty: Schema.String,
  openQty: Schema.String
})
export type OrderView = typeof OrderView.Type

export const MoveResult = Schema.Struct({
  orderId: Schema.String,
  status: OrderStatus,
  filledQty: Schema.String,
  openQty: Schema.String,
  trades: Schema.Array(Fill)
})

/**
 * One answer of a PlaceBatch: the place result, or `rejected` with the reason (then only `clientOrderId` is set).
 * One struct with optional fields rather than a union: the cluster's binary serialization did not answer
 * replies holding a union of structs (Effect 4.1).
 */
export const BatchItem = Schema.Struct({
  clientOrderId: Schema.String,
  orderId: Schema.optional(Schema.String),
  status: Schema.optional(OrderStatus),
  filledQty: Schema.optional(Schema.String),
  openQty: Schema.optional(Schema.String),
  trades: Schema.optional(Schema.Array(Fill)),
  rejected: Schema.optional(RejectReason)
})
export type BatchItem = typeof BatchItem.Type

export const DepthLevel = Schema.Tuple([Schema.String, Schema.String])
export const DepthView = Schema.Struct({
  symbol: Schema.String,
  bids: Schema.Array(DepthLevel),
  asks: Schema.Array(DepthLevel)
})
export type DepthView = typeof DepthView.Type

// ---- wire errors ---------------------------------------------------------------------------------

export class UnknownSymbol extends Schema.TaggedError<UnknownSymbol>()("UnknownSymbol", {
  symbol: Schema.String,
  message: Schema.String
}) {}

export class InvalidOrder extends Schema.TaggedError<InvalidOrder>()("InvalidOrder", {
  reason: RejectReason,
  message: Schema.String
}) {}

export class UnknownOrder extends Schema.TaggedError<UnknownOrder>()("UnknownOrder", {
  orderId: Schema.String,
  message: Schema.String
}) {}

/** The symbol's trading is halted (`tessera symbol halt`): places and moves are refused, cancels still run. */
export class Halted extends Schema.TaggedError<Halted>()("Halted", {
  symbol: Schema.String,
  message: Schema.String
}) {}

/**
 * The symbol's shard did not answer: a cluster or transport failure (runner unreachable, mailbox full, shard not
 * yet assigned), a defect, or its storage failed or did not answer within `TESSERA_JOURNAL_WRITE_TIMEOUT` (the shard
 * answers this itself, then re-reads its durable state). The request may have been applied in part or in full, never
 * twice: retry it with the same keys (a place's `clientOrderId`, a cancel's or move's `requestId`).
 */
export class ShardUnavailable extends Schema.TaggedError<ShardUnavailable>()("ShardUnavailable", {
  symbol: Schema.String,
  message: Schema.String
}) {}

export const ShardError = Schema.Union([UnknownSymbol, InvalidOrder, Halted, ShardUnavailable, Contract.Overloaded])
export const OrderError = Schema.Union([UnknownSymbol, InvalidOrder, UnknownOrder, Halted, ShardUnavailable])

// ---- RPCs ----------------------------------------------------------------------------------------

/** Largest PlaceBatch; the gateway's body limit (1 MiB default) caps it too. */
export const maxBatch = 5000

export const Place = Rpc.make("Place", { payload: PlaceOrder, success: PlaceResult, error: ShardError })

export const PlaceBatch = Rpc.make("PlaceBatch", {
  payload: { orders: Schema.Array(PlaceOrder).check(Schema.isMaxLength(maxBatch)) },
  success: Schema.Struct({ results: Schema.Array(BatchItem) }),
  error: Schema.Union([UnknownSymbol, Halted, ShardUnavailable, Contract.Overloaded])
})

/** Optional idempotency key of a Cancel or Move: a retry with the same one returns the first result. */
export const RequestId = Key

export const Cancel = Rpc.make("Cancel", {
  payload: { orderId: OrderId, requestId: Schema.optional(RequestId) },
  success: OrderView,
  error: OrderError
})

export const Move = Rpc.make("Move", {
  payload: {
    orderId: OrderId,
    price: Schema.optional(DecimalString),
    qty: Schema.optional(DecimalString),
    requestId: Schema.optional(RequestId)
  },
  success: MoveResult,
  error: OrderError
})

export const GetOrder = Rpc.make("GetOrder", {
  payload: { orderId: OrderId },
  success: OrderView,
  error: Schema.Union([UnknownSymbol, UnknownOrder, ShardUnavailable])
})

export const Depth = Rpc.make("Depth", {
  payload: { depth: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))) },
  success: DepthView,
  error: UnknownSymbol
})

/**
 * Re-reads the symbol's row of `symbols` (halted, limits) into the running shard; sent by the `Symbols.*` admin RPCs
 * after their write. Idempotent: the shard applies the table, not the message. Admin-only at the gateway.
 */
export const Reconfigure = Rpc.make("Reconfigure", {
  success: Schema.Struct({ version: Schema.Int }),
  error: UnknownSymbol
})

export const SymbolShard = Entity.make("SymbolShard", [Place, PlaceBatch, Cancel, Move, GetOrder, Depth, Reconfigure])

// ---- gateway-level RPCs ------------------------------------------------------------------------------

/** Most entries (symbols) in one `Orders.PlaceMany`. */
export const maxManySymbols = 64

/** A PlaceMany request broke a limit (entries, orders, a repeated symbol); nothing was placed. */
export class InvalidManyRequest extends Schema.TaggedError<InvalidManyRequest>()("InvalidManyRequest", {
  message: Schema.String
}) {}

/** The orders of one symbol in a PlaceMany. */
export const SymbolBatch = Schema.Struct({ symbol: Ids.Id, orders: Schema.Array(PlaceOrder) })
export type SymbolBatch = typeof SymbolBatch.Type

/** A symbol's batch was answered: one `BatchItem` per order, in order (as PlaceBatch answers). */
export const PlacedEntry = Schema.TaggedStruct("Placed", { symbol: Schema.String, results: Schema.Array(BatchItem) })
/**
 * A symbol's batch failed as a whole: `UnknownSymbol`, `Halted` or `Overloaded` (the shard's journal is behind:
 * placed nothing, retry after its hint) or `ShardUnavailable` (retry it with the same keys).
 */
export const FailedEntry = Schema.TaggedStruct("Failed", {
  symbol: Schema.String,
  error: Schema.Union([UnknownSymbol, ShardUnavailable, Halted, Contract.Overloaded])
})
/**
 * One answer of a PlaceMany, tagged `Placed` or `Failed` so clients switch on `_tag` and the union decodes by its
 * tag. (The gateway answers it as JSON; it never crosses the cluster's binary serialization, see `BatchItem`.)
 */
export const ManyEntry = Schema.Union([PlacedEntry, FailedEntry])
export type ManyEntry = typeof ManyEntry.Type

/**
 * Orders of several symbols in one request, answered by the gateway: exactly one `SymbolShard.PlaceBatch` per
 * entry (entity id = `symbol`), all sent concurrently, with that RPC's semantics. A retry of an entry with the same
 * `(account, clientOrderId)` keys returns the first results (the shard's idempotency). There is no atomicity
 * across symbols: each entry succeeds or fails on its own, and `results` holds one entry per `batches` entry, in
 * order.
 *
 * Limits, checked by the gateway before anything is sent (a violation is `InvalidManyRequest` and places nothing):
 * at most `maxManySymbols` entries, each symbol at most once, at most `maxBatch` orders in all (so in each entry).
 * Wire call: `{"tag":"Orders.PlaceMany","payload":{"batches":[{"symbol":"BTC-USDT","orders":[...]}]}}`.
 */
export const PlaceMany = Rpc.make("Orders.PlaceMany", {
  payload: { batches: Schema.Array(SymbolBatch) },
  success: Schema.Struct({ results: Schema.Array(ManyEntry) }),
  error: InvalidManyRequest
})

/** Gateway-level order RPCs (handlers: `layerOrderRpcs` in gateway.ts). */
export const OrderRpcs = RpcGroup.make(PlaceMany)

// ---- symbol admin RPCs (gateway-level; the `symbols` table is the source of truth) -----------------

/** A symbol's row: tick and lot fixed at creation, quantity limits and the halt flag changeable at run time. */
export const SymbolInfo = Schema.Struct({
  symbol: Schema.String,
  tick: Schema.String,
  lot: Schema.String,
  minQty: Schema.NullOr(Schema.String),
  maxQty: Schema.NullOr(Schema.String),
  halted: Schema.Boolean,
  /** Bumped by every change; a running shard reports the version it applied. */
  version: Schema.Int
})
export type SymbolInfo = typeof SymbolInfo.Type

/** A symbol's config was refused (bad tick, lot or limits; a symbol that exists); nothing was changed. */
export class InvalidSymbolConfig extends Schema.TaggedError<InvalidSymbolConfig>()("InvalidSymbolConfig", {
  symbol: Schema.String,
  message: Schema.String
}) {}

/** An admin answer: the row as written, and whether the running shard (if any) confirmed it applied it. */
export const SymbolChange = Schema.Struct({ symbol: SymbolInfo, applied: Schema.Boolean })

export const ListSymbols = Rpc.make("Symbols.List", {
  success: Schema.Struct({ symbols: Schema.Array(SymbolInfo) })
})
export const AddSymbol = Rpc.make("Symbols.Add", {
  payload: {
    symbol: Schema.String,
    tick: Schema.String,
    lot: Schema.String,
    minQty: Schema.optional(Schema.String),
    maxQty: Schema.optional(Schema.String)
  },
  success: SymbolChange,
  error: InvalidSymbolConfig
})
export const HaltSymbol = Rpc.make("Symbols.Halt", {
  payload: { symbol: Schema.String },
  success: SymbolChange,
  error: UnknownSymbol
})
export const ResumeSymbol = Rpc.make("Symbols.Resume", {
  payload: { symbol: Schema.String },
  success: SymbolChange,
  error: UnknownSymbol
})
/** New quantity limits for new orders (resting orders keep theirs); an absent field keeps its value. */
export const SetSymbol = Rpc.make("Symbols.Set", {
  payload: { symbol: Schema.String, minQty: Schema.optional(Schema.String), maxQty: Schema.optional(Schema.String) },
  success: SymbolChange,
  error: Schema.Union([UnknownSymbol, InvalidSymbolConfig])
})

/** Symbol administration (handlers: `layerSymbolAdminRpcs` in gateway.ts). */
export const SymbolAdminRpcs = RpcGroup.make(ListSymbols, AddSymbol, HaltSymbol, ResumeSymbol, SetSymbol)

/**
 * The RPC tags only an admin token may call (module.ts declares them `"admin"` access): the symbol changes and the
 * shard's Reconfigure. `Symbols.List` is a read every client may make.
 */
export const adminRpcs = [
  "Symbols.Add",
  "Symbols.Halt",
  "Symbols.Resume",
  "Symbols.Set",
  "SymbolShard.Reconfigure"
] as const

/** The market-data stream keys of a symbol (Valkey Streams). */
export const tradesStream = (symbol: string) => `md:${symbol}:trades`
export const depthStream = (symbol: string) => `md:${symbol}:depth`

/** The symbol shard's wire contract: the `SymbolShard` entity and the `Orders.*` gateway RPCs. */
export const SymbolShardContract = Contract.make({
  name: "symbol-shard",
  entities: [SymbolShard],
  rpcs: OrderRpcs.merge(SymbolAdminRpcs)
})

/** The grammar of a symbol id (`BTC-USDT`); the gateway also checks that the symbol is configured. */
export const symbolPattern = /^[A-Z0-9]{1,16}-[A-Z0-9]{1,16}$/
