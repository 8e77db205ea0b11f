/**
 * TesseraClient: a typed RPC client for a Tessera gateway.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const tessera = yield* TesseraClient
 *   const status = yield* tessera.Status()
 *   const where = yield* tessera["Probe.Where"]({ entityId: "p-1", payload: {} })
 * }).pipe(Effect.provide(TesseraClient.layer({ url: "http://127.0.0.1:7400", token: undefined })))
 * ```
 */
import { Context, Effect, Layer } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { RpcClient, type RpcClientError, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"
import { TesseraApi } from "./Api.ts"

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

export type Client = RpcClient.RpcClient<RpcGroupRpcs<typeof TesseraApi>, RpcClientError.RpcClientError>
type RpcGroupRpcs<G> = G extends { readonly requests: ReadonlyMap<string, infer R> } ? R : never

/** Builds a client over HTTP (ndjson); the scope owns its connections. */
const baseUrl = (url: string) => url.replace(/\/+$/, "")

/** The WebSocket URL of a gateway; browsers' WebSockets cannot send headers, so the token goes in the query. */
export const webSocketUrl = (options: ClientOptions) => {
  const url = new URL(`${baseUrl(options.url)}/rpc`)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  if (options.token !== undefined) url.searchParams.set("access_token", options.token)
  return url.toString()
}

const layerProtocol = (options: ClientOptions) =>
  options.transport === "websocket"
    ? RpcClient.layerProtocolSocket({ retryTransientErrors: true }).pipe(
        Layer.provide(Socket.layerWebSocket(webSocketUrl(options))),
        Layer.provide(Socket.layerWebSocketConstructorGlobal),
        Layer.provide(RpcSerialization.layerNdjson)
      )
    : RpcClient.layerProtocolHttp({
        url: `${baseUrl(options.url)}/rpc`,
        transformClient: (client) =>
          options.token === undefined
            ? client
            : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(options.token))
      }).pipe(Layer.provide([RpcSerialization.layerNdjson, FetchHttpClient.layer]))

/** Builds a client; the scope owns its connections. */
export const make = (options: ClientOptions) =>
  Layer.build(layerProtocol(options)).pipe(
    Effect.flatMap((context) => RpcClient.make(TesseraApi).pipe(Effect.provideContext(context)))
  )

export class TesseraClient extends Context.Service<TesseraClient, Client>()("tessera/client/TesseraClient") {
  static readonly layer = (options: ClientOptions) => Layer.effect(TesseraClient)(make(options))
}
