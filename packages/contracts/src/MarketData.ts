/**
 * Market-data subscriptions through the gateway: `MarketData.Subscribe` streams the trades and depth of symbols and
 * the book deltas of markets as they are published, each event carrying its stream key and entry id. A client that
 * reconnects sends the last id it saw per stream in `from`: the gateway replays what came after it from the stream
 * (XRANGE), then goes live, so the client sees every entry once, in order, with no hole.
 *
 * Modules declare what can be subscribed to (`Module.marketData`): the payload field that names their ids
 * (`symbols`, `markets`), an id check, and the streams of an id.
 */
import { type Effect, Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"
import * as Contract from "./Contract.ts"

/** What a stream holds: trades of a symbol, depth snapshots of a symbol, book deltas of a market. */
export const Kind = Schema.Literals(["trade", "depth", "book"])
export type Kind = typeof Kind.Type

/**
 * `position`: no entry, the point a stream started at for a subscription without a `from` for it (its id is the
 * stream's last id then; `fields` is empty). A client keeps it as that stream's resume point, so a reconnect before
 * the stream's first entry still misses nothing.
 */
export const EventKind = Schema.Literals(["trade", "depth", "book", "position"])

/** One stream entry. `stream` and `id` are what a client sends back in `from` to resume. */
export const Event = Schema.Struct({
  /** The stream key (`md:BTC-USDT:trades`, `md:book:m7`). */
  stream: Schema.String,
  /** The entry id (`<n>-0`), increasing within a stream. */
  id: Schema.String,
  kind: EventKind,
  /** The symbol or market the stream belongs to. */
  source: Schema.String,
  /** The entry's fields as published (see the README's stream formats). */
  fields: Schema.Record(Schema.String, Schema.String)
})
export type Event = typeof Event.Type

/** Symbols plus markets one subscription may name, at most. */
export const maxSources = 64

export const SubscribeRequest = Schema.Struct({
  symbols: Schema.optional(Schema.Array(Schema.String)),
  markets: Schema.optional(Schema.Array(Schema.String)),
  /**
   * Resume points: stream key -> the last entry id already received. Streams named here start right after that
   * id; the others start with the next entry published.
   */
  from: Schema.optional(Schema.Record(Schema.String, Schema.String))
})
export type SubscribeRequest = typeof SubscribeRequest.Type

/** A malformed request: nothing named, too many sources, a duplicate, a `from` key or id that does not fit. */
export class InvalidSubscription extends Schema.TaggedError<InvalidSubscription>()("InvalidSubscription", {
  message: Schema.String
}) {}

/** A symbol that is malformed or not configured. */
export class UnknownSymbol extends Schema.TaggedError<UnknownSymbol>()("UnknownSymbol", {
  symbol: Schema.String,
  message: Schema.String
}) {}

/** A market that is malformed or has never been seen. */
export class UnknownMarket extends Schema.TaggedError<UnknownMarket>()("UnknownMarket", {
  market: Schema.String,
  message: Schema.String
}) {}

/**
 * The subscriber did not keep up: its buffer of `bound` events filled, so the gateway dropped it and ended the
 * subscription. Resume with `from` (the last ids received) once ready to read.
 */
export class SlowConsumer extends Schema.TaggedError<SlowConsumer>()("SlowConsumer", {
  bound: Schema.Number,
  message: Schema.String
}) {}

/** The gateway cannot serve the subscription now (Valkey unreachable, or its subscriber limit reached). */
export class MarketDataUnavailable extends Schema.TaggedError<MarketDataUnavailable>()("MarketDataUnavailable", {
  message: Schema.String
}) {}

export const SubscribeError = Schema.Union([
  InvalidSubscription,
  UnknownSymbol,
  UnknownMarket,
  SlowConsumer,
  MarketDataUnavailable
])
export type SubscribeError = typeof SubscribeError.Type

export const Subscribe = Rpc.make("MarketData.Subscribe", {
  payload: SubscribeRequest,
  success: Event,
  error: SubscribeError,
  stream: true
})

export const MarketDataRpcs = RpcGroup.make(Subscribe)

/** The gateway's market-data contract: no entities, the `MarketData.*` RPCs. */
export const MarketDataContract = Contract.make({ name: "market-data", entities: [], rpcs: MarketDataRpcs })

/** A stream of one subscribable id. */
export interface SourceStream {
  readonly key: string
  readonly kind: Kind
}

/**
 * What a module offers to subscriptions: the request field naming its ids, a check (`undefined` when the id is
 * valid, else why not; cheap, it runs on every subscription), and the streams of an id.
 */
export interface Source {
  readonly field: "symbols" | "markets"
  readonly check: (id: string) => Effect.Effect<string | undefined>
  readonly streams: (id: string) => ReadonlyArray<SourceStream>
}
