/**
 * The gateway: every actor protocol and the control RPCs over Effect RPC on HTTP (`POST /rpc`, ndjson) and
 * WebSocket (`GET /rpc`, upgrade), plus `/health` (liveness), `/ready` (can serve) and `/status` (JSON).
 *
 * Requests are checked before they reach the RPC server: a bearer token when one is configured (401 without
 * it; in the `Authorization` header, the status routes also take `?access_token=`), and a body-size limit (413).
 * The RPC `Access` middleware then applies the modules' per-RPC rules (accounts, admin) with a typed `Forbidden`. Malformed RPC payloads are answered by the RPC server with typed errors;
 * nothing a client sends can stop the runner.
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Contract, Control, type Module } from "@tessera/contracts"
import { Duration, Effect, Layer, Option } from "effect"
import { EntityProxyServer } from "effect/cluster"
import { HttpIncomingMessage, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { RpcSerialization, RpcServer } from "effect/rpc"
import * as Access from "./access.ts"
import * as Admission from "./admission.ts"
import { TesseraConfig, type TesseraConfigShape } from "./config.ts"
import * as Drain from "./drain.ts"
import * as Hosted from "./hosted.ts"
import * as Metrics from "./metrics.ts"
import { NodeStatus } from "./NodeStatus.ts"
import * as RpcSocket from "./rpcSocket.ts"
import * as StatusPage from "./statusPage.ts"
import * as Subscriptions from "./subscriptions.ts"

type Handler = Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  HttpServerRequest.HttpServerRequest | import("effect").Scope.Scope
>

const errorResponse = (status: number, error: string, message: string) =>
  HttpServerResponse.jsonUnsafe({ error, message }, { status })

/**
 * Wraps a handler with bearer-token auth: the `Authorization` header, and on routes a browser opens directly (the
 * status page's data) also an `access_token` query parameter. Never for `/rpc` or `/metrics`: a token in a URL ends
 * up in proxy and load-balancer logs and browser history.
 */
const authorize = (principals: Access.Principals, options: { readonly query: boolean }) => {
  if (!principals.enabled) return (handler: Handler): Handler => handler
  return (handler: Handler): Handler =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request: HttpServerRequest.HttpServerRequest) => {
      const fromHeader = Access.bearerOf(request.headers.authorization)
      const fromQuery =
        fromHeader === undefined && options.query
          ? new URL(request.url, "http://x").searchParams.get("access_token")
          : null
      const given = fromHeader ?? fromQuery ?? undefined
      if (given === undefined || principals.resolve(given) === undefined) {
        return Effect.succeed(
          HttpServerResponse.setHeader(
            errorResponse(
              401,
              "Unauthorized",
              options.query
                ? "a valid bearer token is required"
                : "a valid bearer token is required in the Authorization header"
            ),
            "www-authenticate",
            'Bearer realm="tessera"'
          )
        )
      }
      return handler
    })
}

/** One year: browsers keep to HTTPS for this long after an answer over TLS. */
const hstsValue = "max-age=31536000"

/** Adds `Strict-Transport-Security` when the gateway is served over TLS (`TESSERA_HSTS`). */
const withHsts = (mode: TesseraConfigShape["hsts"]) => {
  if (mode === "off") return (handler: Handler): Handler => handler
  return (handler: Handler): Handler =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request: HttpServerRequest.HttpServerRequest) =>
      mode === "on" || request.headers["x-forwarded-proto"] === "https"
        ? Effect.map(handler, (response) =>
            HttpServerResponse.setHeader(response, "strict-transport-security", hstsValue)
          )
        : handler
    )
}

/** Rejects bodies over the limit up front (Content-Length) and while streaming (chunked bodies). */
const limitBody =
  (maxBytes: number) =>
  (handler: Handler): Handler =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request: HttpServerRequest.HttpServerRequest) => {
      const declared = Number(request.headers["content-length"] ?? "0")
      if (declared > maxBytes) {
        return Effect.succeed(
          errorResponse(413, "PayloadTooLarge", `request body of ${declared} bytes exceeds the ${maxBytes}-byte limit`)
        )
      }
      return handler.pipe(
        Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBytes as never),
        Effect.catchDefect((defect) =>
          Effect.succeed(errorResponse(400, "BadRequest", `request could not be read: ${String(defect)}`))
        )
      )
    })

/**
 * The RPC handlers the gateway serves: control RPCs, Effect's entity proxy for every module's entities, then each
 * module's own handlers (which may replace a proxy, e.g. one addressed by zone shard group), and the id guard.
 */
export const layerHandlers = (modules: ReadonlyArray<Module.Any>) =>
  Layer.mergeAll(
    Control.ControlRpcs.toLayer(
      Effect.gen(function* () {
        const status = yield* NodeStatus
        const admission = yield* Admission.Controller
        return Control.ControlRpcs.of({
          Status: () => status.cluster,
          [Control.UnknownRpcTag]: ({ tag }: { readonly tag: string }) =>
            Effect.fail(new Control.UnknownRpc({ tag, message: `this gateway serves no RPC ${JSON.stringify(tag)}` })),
          [Control.OverloadedTag]: ({ held, bound }: { readonly held: number; readonly bound: number }) =>
            admission.shed(held, bound)
        })
      })
    ),
    ...modules.flatMap((module) =>
      module.contract.entities.map((entity) => EntityProxyServer.layerRpcHandlers(entity))
    ),
    ...modules.map((module) => Hosted.withConfig(module, module.handlers ?? Layer.empty)),
    Hosted.layerEntityGuard(modules),
    Drain.layerAdmission,
    Access.layer(modules)
  )

/**
 * ndjson as the RPC server reads it, but a request for a tag `api` does not serve is sent to `Tessera.UnknownRpc`
 * (its tag as the payload), so the client gets a typed `UnknownRpc`; and one the runner is too loaded to admit is
 * sent to `Tessera.Overloaded` before its payload is decoded. One Set lookup and one admission check per request.
 */
export const serializationFor = (
  api: Contract.Api<Contract.Any>,
  admission: Pick<Admission.Controller["Service"], "wouldShed" | "inFlight" | "limit">
): RpcSerialization.RpcSerialization["Service"] => {
  const known = new Set(api.requests.keys())
  const base = RpcSerialization.ndjson
  return {
    contentType: base.contentType,
    includesFraming: base.includesFraming,
    codecFor: base.codecFor,
    makeUnsafe: () => {
      const parser = base.makeUnsafe()
      return {
        encode: parser.encode,
        decode: (data) => {
          const messages = parser.decode(data)
          let out: Array<unknown> | undefined
          for (let i = 0; i < messages.length; i++) {
            const message = messages[i] as { readonly _tag?: unknown; readonly tag?: unknown }
            if (message === null) {
              // The RPC server reads `_tag` of every message: a `null` line ended the WebSocket without a word.
              // As `{}` it is answered like any other message that is not a request: with a Defect.
              out ??= [...messages]
              out[i] = {}
              continue
            }
            if (message?._tag !== "Request") continue
            if (known.has(message.tag as string)) {
              const payload = (message as { readonly payload?: unknown }).payload
              if (!admission.wouldShed(message.tag as string, payload)) continue
              out ??= [...messages]
              out[i] = {
                ...message,
                tag: Control.OverloadedTag,
                payload: { held: admission.inFlight(), bound: admission.limit() }
              }
              continue
            }
            out ??= [...messages]
            const tag = String(message.tag).slice(0, 256)
            out[i] = { ...message, tag: Control.UnknownRpcTag, payload: { tag } }
          }
          return out ?? messages
        }
      }
    }
  }
}

const routes = (api: Contract.Api<Contract.Any>, modules: ReadonlyArray<Module.Any>) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const status = yield* NodeStatus
      const router = yield* HttpRouter.HttpRouter
      const principals = yield* Access.PrincipalsService
      const hsts = withHsts(config.hsts)
      const byHeader = authorize(principals, { query: false })
      const byHeaderOrQuery = authorize(principals, { query: true })
      const guard = (handler: Handler) => hsts(byHeader(limitBody(config.maxBodyBytes)(handler)))

      const admission = yield* Admission.Controller
      const serialization = serializationFor(api, admission)
      // A stop waits for what the gateway admitted (drain.ts).
      yield* (yield* Drain.Drain).track(admission.inFlight)
      // Without a trace exporter a request's span would only be allocated and dropped: measured on the graph read
      // mix, skipping it cut the garbage that outlives a young-generation GC (and with it the pause).
      const rpcOptions = {
        spanPrefix: "gateway",
        disableTracing: Option.isNone(config.otlpEndpoint),
        // The HTTP protocol queues a body's replies (16 by default) before it starts the response, and replies that
        // come at once (a payload that fails decoding) are queued while the body is still read: 17 of them in one
        // body deadlocked the request. A message takes at least 2 bytes ("0\n"), so this bound can never fill.
        streamBufferSize: Math.ceil(config.maxBodyBytes / 2)
      }
      const rpcHttp = yield* RpcServer.toHttpEffect(api, rpcOptions).pipe(
        Effect.provideService(RpcSerialization.RpcSerialization, serialization),
        Metrics.instrumentRpcHandlers(api)
      )
      // Replies written in one event-loop turn share a frame (rpcSocket.ts).
      const rpcSocket = yield* RpcSocket.toHttpEffectWebsocket(api, rpcOptions).pipe(
        Effect.provideService(RpcSerialization.RpcSerialization, serialization),
        Metrics.instrumentRpcHandlers(api)
      )
      yield* router.add("POST", "/rpc", guard(rpcHttp))
      yield* router.add("GET", "/rpc", guard(rpcSocket))

      yield* router.add(
        "GET",
        "/health",
        hsts(Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "ok", runner: status.self })))
      )
      yield* router.add(
        "GET",
        "/ready",
        hsts(
          Effect.map(status.readiness, (readiness) =>
            HttpServerResponse.jsonUnsafe(
              { status: readiness, runner: status.self },
              { status: readiness === "ready" ? 200 : 503 }
            )
          )
        )
      )
      yield* router.add("GET", "/metrics", hsts(byHeader(yield* Metrics.makeHandler)))
      // The status page reads `?access_token=` in the browser and sends it to its data routes, which a browser may
      // also open directly: those alone take the token from the query.
      yield* router.add("GET", "/", hsts(StatusPage.page))
      yield* router.add("GET", "/status/live", hsts(byHeaderOrQuery(yield* StatusPage.makeLive(modules))))
      yield* router.add(
        "GET",
        "/status",
        hsts(
          byHeaderOrQuery(
            status.cluster.pipe(
              Effect.map((cluster) => HttpServerResponse.jsonUnsafe(cluster)),
              Effect.catch((error) => Effect.succeed(errorResponse(503, error._tag, error.message)))
            )
          )
        )
      )
    })
  )

/**
 * The gateway's Node server with slow-client limits: headers within `httpHeadersTimeout`, the whole request within
 * `httpRequestTimeout` (else 408 and the socket closes). Node checks both every `connectionsCheckingInterval`, 30 s
 * by default, far too coarse for a 10 s limit.
 */
const serverFor = (config: TesseraConfigShape) => () => {
  const headersTimeout = Math.max(1, Math.round(Duration.toMillis(config.httpHeadersTimeout)))
  // Node refuses a request timeout shorter than the headers timeout.
  const requestTimeout = Math.max(headersTimeout, Math.round(Duration.toMillis(config.httpRequestTimeout)))
  const server = createServer({
    headersTimeout,
    requestTimeout,
    connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeout / 2)),
    // Longer than the AWS load balancer's 60 s idle timeout: the balancer closes an idle connection first, so it
    // never sends a request on a socket the gateway is closing.
    keepAliveTimeout: 65_000,
    maxHeaderSize: 16 * 1024
  })
  server.maxConnections = config.maxConnections
  return server
}

/**
 * The gateway HTTP server on `TESSERA_HOST:TESSERA_PORT`, serving `modules` besides the control RPCs, and the
 * market-data subscriptions over the streams they declare.
 */
export const layer = (modules: ReadonlyArray<Module.Any>) => {
  const served: ReadonlyArray<Module.Any> = [...modules, Subscriptions.module(modules)]
  return Layer.unwrap(
    Effect.map(TesseraConfig, (config: TesseraConfigShape) =>
      HttpRouter.serve(routes(Contract.api(...served.map((module) => module.contract)), modules), {
        disableLogger: true
      }).pipe(
        Layer.provide(
          Layer.provideMerge(
            layerHandlers(served),
            Layer.merge(Admission.layerController(served), Access.layerPrincipals)
          )
        ),
        Layer.provideMerge(
          NodeHttpServer.layer(serverFor(config), {
            port: config.port,
            host: config.host,
            // By the time the server closes, the drain has let its requests finish: idle connections (WebSocket
            // clients, keep-alives) are closed after a short grace instead of holding the stop for 20 s.
            gracefulShutdownTimeout: Duration.seconds(1),
            // A frame over the body limit closes the socket with 1009 (ws's own default is 100 MiB).
            websocket: { maxPayload: config.maxBodyBytes }
          })
        )
      )
    )
  )
}

/** Prints `tessera ready <url>` once the gateway listens (scripts and tests wait for this line). */
export const announceReady = Layer.effectDiscard(
  HttpServer.addressFormattedWith((url) =>
    Effect.sync(() => {
      process.stdout.write(`tessera ready ${url.replace("0.0.0.0", "127.0.0.1")}\n`)
    })
  )
)
