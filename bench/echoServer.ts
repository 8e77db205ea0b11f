// A gateway that does no work: the proxy bench's read and write RPCs over the same transport as the runner's
// gateway (Effect RpcServer on runtime/rpcSocket.ts, NDJSON over a WebSocket, no per-request span), each answered at once from memory
// (BatchGet: one small object per id; Neighbors: two edges; PutVertex: `created: false`). The proxy bench runs its
// open-loop schedule against it to show the latency that two Node processes on this machine reach with no Redis,
// no partitions and no handler cost. Prints `echo ready <port>` on stdout once it listens (on 127.0.0.1, a free
// port).
import { createServer } from "node:http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { Rpc, RpcGroup, RpcSerialization } from "effect/rpc"
import * as RpcSocket from "../runtime/rpcSocket.ts"

const EchoRpcs = RpcGroup.make(
  Rpc.make("Graph.BatchGet", {
    payload: { ids: Schema.Array(Schema.String) },
    success: Schema.Array(Schema.NullOr(Schema.Unknown))
  }),
  Rpc.make("Graph.Neighbors", { payload: { id: Schema.String }, success: Schema.Array(Schema.Unknown) }),
  Rpc.make("ProxyPartition.PutVertex", {
    payload: { entityId: Schema.String, payload: Schema.Unknown },
    success: Schema.Struct({ created: Schema.Boolean })
  })
)

const handlers = EchoRpcs.toLayer({
  "Graph.BatchGet": ({ ids }) => Effect.succeed(ids.map((id, n) => ({ n, name: id, score: 7 }))),
  "Graph.Neighbors": ({ id }) =>
    Effect.succeed([
      { label: "follows", id },
      { label: "likes", id }
    ]),
  "ProxyPartition.PutVertex": () => Effect.succeed({ created: false })
})

const routes = Layer.effectDiscard(
  Effect.gen(function* () {
    const router = yield* HttpRouter.HttpRouter
    const socket = yield* RpcSocket.toHttpEffectWebsocket(EchoRpcs, { disableTracing: true }).pipe(
      Effect.provideService(RpcSerialization.RpcSerialization, RpcSerialization.ndjson)
    )
    yield* router.add("GET", "/rpc", socket)
  })
)

const announce = Layer.effectDiscard(
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const address = server.address
    if (address._tag === "UnixPathAddress") return yield* Effect.die(new Error("the echo server is not on TCP"))
    yield* Effect.sync(() => process.stdout.write(`echo ready ${address.port}\n`))
  })
)

HttpRouter.serve(routes, { disableLogger: true }).pipe(
  Layer.provide(handlers),
  Layer.merge(announce),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
