/**
 * TesseraClient: a typed RPC client for a Tessera gateway, typed by the contracts of the modules it talks to.
 *
 * ```ts
 * const api = Contract.api(CounterContract)
 * const program = Effect.gen(function*() {
 *   const tessera = yield* TesseraClient.make(api, { url: "http://127.0.0.1:7400" })
 *   const status = yield* tessera.Status()
 *   const count = yield* tessera["Counter.Increment"]({ entityId: "c-1", payload: { by: 1 } })
 * }).pipe(Effect.scoped)
 * ```
 */

import { Contract, MarketData } from "@tessera/contracts"
import { Cause, Context, Effect, Exit, Layer, Schedule, Stream } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { RpcClient, type RpcClientError, type RpcGroup, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"
import * as Throttle from "./Throttle.ts"

export interface ClientOptions {
  /** Gateway base URL, e.g. `http://127.0.0.1:7400`. */
  readonly url: string
  /** Bearer token, when the gateway requires one. */
  readonly token?: string | undefined
  /**
   * `http` (default): one POST per call, nothing held open. `websocket`: one connection multiplexing every call,
   * for clients that send many requests (benches, services); reconnects on its own.
   */
  readonly transport?: "http" | "websocket" | undefined
  /**
   * Back off while the gateway refuses `Overloaded` (`Throttle.ts`): the client then refuses a share of calls itself,
   * at once, with a local `Overloaded`, so about `k` times what the gateway accepts reaches it. Off by default;
   * `true` for the defaults (k 2 over 1 s). Streaming calls are never throttled.
   */
  readonly throttle?: boolean | Throttle.ThrottleOptions | undefined
}

/** A client of `api` (a `Contract.api(...)`; by default the control RPCs only). */
export type Client<Api extends RpcGroup.Any = Contract.Api<never>> = RpcClient.RpcClient<
  RpcGroup.Rpcs<Api>,
  RpcClientError.RpcClientError
>

/** The gateway API with no modules: the control RPCs (`Status`). */
export const controlApi: Contract.Api<never> = Contract.api()

/** Builds a client over HTTP (ndjson); the scope owns its connections. */
const baseUrl = (url: string) => url.replace(/\/+$/, "")

/** The WebSocket URL of a gateway's RPC endpoint. */
export const webSocketUrl = (options: ClientOptions) => {
  const url = new URL(`${baseUrl(options.url)}/rpc`)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  return url.toString()
}

/**
 * The runtime's own WebSocket with handshake headers: the gateway takes the token only in the `Authorization` header
 * on `/rpc` (a query string ends up in logs). Node's and Deno's WebSocket accept `{ headers }`; Effect's global
 * constructor layer refuses any options object.
 */
const layerWebSocketWithHeaders = Layer.succeed(Socket.WebSocketConstructor)(
  (url, options) => new globalThis.WebSocket(url, options as never)
)

const layerProtocol = (options: ClientOptions) =>
  options.transport === "websocket"
    ? RpcClient.layerProtocolSocket({ retryTransientErrors: true }).pipe(
        Layer.provide(
          Socket.layerWebSocket(
            webSocketUrl(options),
            options.token === undefined ? undefined : { headers: { authorization: `Bearer ${options.token}` } }
          )
        ),
        Layer.provide(layerWebSocketWithHeaders),
        Layer.provide(RpcSerialization.layerNdjson)
      )
    : RpcClient.layerProtocolHttp({
        url: `${baseUrl(options.url)}/rpc`,
        transformClient: (client) =>
          options.token === undefined
            ? client
            : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(options.token))
      }).pipe(Layer.provide([RpcSerialization.layerNdjson, FetchHttpClient.layer]))

/** Builds a client of `api`; the scope owns its connections. */
export const make = <Api extends RpcGroup.Any>(api: Api, options: ClientOptions) =>
  Layer.build(layerProtocol(options)).pipe(
    Effect.flatMap((context) =>
      RpcClient.make(api as unknown as RpcGroup.RpcGroup<any>).pipe(Effect.provideContext(context))
    ),
    Effect.map(
      (client) =>
        (options.throttle === undefined || options.throttle === false
          ? client
          : throttled(
              client,
              Throttle.make(options.throttle === true ? {} : options.throttle)
            )) as unknown as Client<Api>
    )
  )

/** The `Overloaded` a call failed with, if it did. */
const overloadedOf = (exit: Exit.Exit<unknown, unknown>): { readonly retryAfterMs?: unknown } | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") return undefined
  const value = error.value as { readonly _tag?: unknown; readonly retryAfterMs?: unknown }
  return value._tag === "Overloaded" ? value : undefined
}

/** `client` with every call that returns an effect passed through `throttle` first. */
const throttled = (client: Record<string, unknown>, throttle: Throttle.Throttle): Record<string, unknown> => {
  let retryAfterMs = 50
  const out: Record<string, unknown> = {}
  for (const [tag, call] of Object.entries(client)) {
    if (typeof call !== "function") {
      out[tag] = call
      continue
    }
    out[tag] = (...args: Array<unknown>) => {
      const result = call(...args)
      if (!Effect.isEffect(result)) return result
      return Effect.suspend(() => {
        const now = performance.now()
        if (!throttle.admit(now)) {
          const share = Math.round(throttle.rejectShare(now) * 100)
          return Effect.fail(
            new Contract.Overloaded({
              message: `refused by this client's back-off (the gateway refused recent requests Overloaded; ${share}% held back now); retry after ${retryAfterMs} ms`,
              retryAfterMs
            })
          )
        }
        return Effect.onExit(result, (exit) =>
          Effect.sync(() => {
            const refused = overloadedOf(exit)
            if (refused === undefined) throttle.accepted(performance.now())
            else if (typeof refused.retryAfterMs === "number" && refused.retryAfterMs > 0) {
              retryAfterMs = refused.retryAfterMs
            }
          })
        )
      })
    }
  }
  return out
}

/** A client of the control RPCs as a service (`tessera status` and health checks). */
export class TesseraClient extends Context.Service<TesseraClient, Client>()("tessera/client/TesseraClient") {
  static readonly layer = (options: ClientOptions) => Layer.effect(TesseraClient)(make(controlApi, options))
}

/** The gateway API of market-data subscriptions. */
const marketDataApi = Contract.api(MarketData.MarketDataContract)

/** A subscription's refusal that a retry cannot change (bad request, unknown symbol or market, no access). */
const isFinal = (error: unknown): boolean => {
  const tag = (error as { readonly _tag?: unknown } | undefined)?._tag
  return tag !== "RpcClientError" && tag !== "MarketDataUnavailable" && tag !== "SlowConsumer"
}

/** A final refusal carried past the retry as an element (retries apply to every failure). */
class Final {
  readonly error: unknown
  constructor(error: unknown) {
    this.error = error
  }
}

/** Delay between reconnects: doubling from 100 ms, at most 5 s, jittered; reset by the first event after one. */
const reconnectSchedule = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered
)

/**
 * Subscribes to market data (`MarketData.Subscribe` over WebSocket): the trades and depth of `symbols`, the book
 * deltas of `markets`, as they are published, from `request.from` (stream key -> last id received) or from now on.
 *
 * Reconnects on its own (a dropped connection, a Valkey outage at the gateway, or a `SlowConsumer` cut-off) and
 * resumes every stream right after the last id it has seen, so the stream has no hole and no repeat. It fails only
 * on a refusal a retry cannot change: `InvalidSubscription`, `UnknownSymbol`, `UnknownMarket`, `Forbidden`.
 */
export const subscribe = (options: Omit<ClientOptions, "transport">, request: MarketData.SubscribeRequest) =>
  Stream.unwrap(
    Effect.gen(function* () {
      const client = yield* make(marketDataApi, { ...options, transport: "websocket" })
      // The resume point of each stream: the gateway sends a `position` event for every stream it starts live.
      const from: Record<string, string> = { ...request.from }
      const attempt = Stream.suspend(() => client["MarketData.Subscribe"]({ ...request, from: { ...from } })).pipe(
        Stream.tap((event) =>
          Effect.sync(() => {
            from[event.stream] = event.id
          })
        ),
        Stream.filter((event) => event.kind !== "position"),
        Stream.catchIf(isFinal, (error) => Stream.succeed(new Final(error)))
      )
      return attempt.pipe(
        Stream.retry(reconnectSchedule),
        Stream.mapEffect((item) =>
          item instanceof Final
            ? Effect.fail(item.error as MarketData.SubscribeError | Contract.Forbidden | Contract.Overloaded)
            : Effect.succeed(item as MarketData.Event)
        )
      )
    })
  )
