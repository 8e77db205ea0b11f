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

import { Contract } from "@tessera/contracts"
import { Context, Effect, Layer } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { RpcClient, type RpcClientError, type RpcGroup, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"

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
    Effect.map((client) => client as unknown as Client<Api>)
  )

/** A client of the control RPCs as a service (`tessera status` and health checks). */
export class TesseraClient extends Context.Service<TesseraClient, Client>()("tessera/client/TesseraClient") {
  static readonly layer = (options: ClientOptions) => Layer.effect(TesseraClient)(make(controlApi, options))
}
