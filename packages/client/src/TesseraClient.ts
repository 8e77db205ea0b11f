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
import { TesseraApi } from "./Api.ts"

export interface ClientOptions {
  /** Gateway base URL, e.g. `http://127.0.0.1:7400`. */
  readonly url: string
  /** Bearer token, when the gateway requires one. */
  readonly token?: string | undefined
}

export type Client = RpcClient.RpcClient<RpcGroupRpcs<typeof TesseraApi>, RpcClientError.RpcClientError>
type RpcGroupRpcs<G> = G extends { readonly requests: ReadonlyMap<string, infer R> } ? R : never

/** Builds a client over HTTP (ndjson); the scope owns its connections. */
export const make = (options: ClientOptions) =>
  RpcClient.make(TesseraApi).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({
        url: `${options.url.replace(/\/+$/, "")}/rpc`,
        transformClient: (client) =>
          options.token === undefined
            ? client
            : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(options.token))
      }).pipe(Layer.provide([RpcSerialization.layerNdjson, FetchHttpClient.layer]))
    )
  )

export class TesseraClient extends Context.Service<TesseraClient, Client>()("tessera/client/TesseraClient") {
  static readonly layer = (options: ClientOptions) => Layer.effect(TesseraClient)(make(options))
}
