import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Schema } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { Rpc, RpcClient, RpcGroup, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"
import * as RpcSocket from "./rpcSocket.ts"

const Double = Rpc.make("Double", { payload: { n: Schema.Number }, success: Schema.Number })
const Rpcs = RpcGroup.make(Double)
const BURST = 8

/**
 * A server of `Double` on the gateway's WebSocket protocol whose handlers all wait for `gate`; `arrived` completes
 * once `BURST` requests wait, so opening the gate resumes them together and their replies are written in one turn.
 */
const serve = Effect.gen(function* () {
  const gate = yield* Deferred.make<void>()
  const arrived = yield* Deferred.make<void>()
  let waiting = 0
  const handlers = Rpcs.toLayer({
    Double: ({ n }) =>
      Effect.andThen(
        Effect.sync(() => {
          if (++waiting === BURST) Deferred.doneUnsafe(arrived, Effect.void)
        }),
        Effect.as(Deferred.await(gate), n * 2)
      )
  })
  const routes = Layer.effectDiscard(
    Effect.gen(function* () {
      const router = yield* HttpRouter.HttpRouter
      const socket = yield* RpcSocket.toHttpEffectWebsocket(Rpcs, { disableTracing: true }).pipe(
        Effect.provideService(RpcSerialization.RpcSerialization, RpcSerialization.ndjson)
      )
      yield* router.add("GET", "/rpc", socket)
    })
  )
  const services = yield* Layer.build(
    HttpRouter.serve(routes, { disableLogger: true }).pipe(
      Layer.provide(handlers),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
  )
  const address = (yield* Effect.provide(HttpServer.HttpServer, services)).address
  if (address._tag === "UnixPathAddress") return yield* Effect.die("not on TCP")
  return { url: `ws://127.0.0.1:${address.port}/rpc`, gate, arrived }
})

const request = (id: number) =>
  `${JSON.stringify({ _tag: "Request", id: String(id), tag: "Double", payload: { n: id }, headers: [] })}\n`

/** A socket writer that records the frames written. */
const recordingWriter = () => {
  const frames: Array<string | Uint8Array | Socket.CloseEvent> = []
  const writer: Socket.Writer = {
    write: (chunk) => Effect.sync(() => void frames.push(chunk)),
    writeAll: (chunks) => Effect.sync(() => void frames.push(...chunks))
  }
  return { frames, writer }
}

const nextTurn = Effect.callback<void>((resume) => void setImmediate(() => resume(Effect.void)))

describe("coalescing writer", () => {
  it.live("joins the writes of one turn, sends a large turn in bounded frames, and drops writes once closed", () =>
    Effect.gen(function* () {
      const { frames, writer } = recordingWriter()
      const coalescing = RpcSocket.makeCoalescingWriter(writer)
      coalescing.write("a\n")
      coalescing.write("b\n")
      assert.strictEqual(frames.length, 0, "nothing is sent before the turn ends")
      yield* nextTurn
      assert.deepStrictEqual(frames, ["a\nb\n"])

      const big = `${"x".repeat(40 * 1024)}\n`
      coalescing.write(big)
      coalescing.write(big)
      coalescing.write(big)
      assert.deepStrictEqual(frames.slice(1), [big + big], "past the bound the joined replies go out at once")
      yield* nextTurn
      assert.deepStrictEqual(frames.slice(1), [big + big, big])

      coalescing.write("c\n")
      yield* coalescing.after(writer.write(new Socket.CloseEvent(1000)))
      assert.strictEqual(frames[3], "c\n", "a close event goes after what is pending")
      assert.instanceOf(frames[4], Socket.CloseEvent)
      coalescing.close()
      coalescing.write("d\n")
      yield* nextTurn
      assert.strictEqual(frames.length, 5)
    })
  )
})

describe("gateway WebSocket protocol", () => {
  it.live("serves every request of a frame and sends the replies of one turn as one frame", () =>
    Effect.gen(function* () {
      const { url, gate, arrived } = yield* serve
      const ws = new WebSocket(url)
      yield* Effect.addFinalizer(() => Effect.sync(() => ws.close()))
      yield* Effect.callback<void>((resume) => ws.addEventListener("open", () => resume(Effect.void), { once: true }))
      const frames: Array<string> = []
      const replies = new Map<string, unknown>()
      const all = yield* Deferred.make<void>()
      ws.addEventListener("message", (event) => {
        const text = String(event.data)
        frames.push(text)
        for (const line of text.split("\n")) {
          if (line.length === 0) continue
          const message = JSON.parse(line) as { _tag: string; requestId: string; exit: { value: unknown } }
          if (message._tag === "Exit") replies.set(message.requestId, message.exit.value)
        }
        if (replies.size === BURST) Deferred.doneUnsafe(all, Effect.void)
      })
      // Several requests in one frame: each is served.
      ws.send(Array.from({ length: BURST }, (_, i) => request(i)).join(""))
      yield* Deferred.await(arrived)
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(all)
      for (let i = 0; i < BURST; i++) assert.strictEqual(replies.get(String(i)), i * 2)
      assert.strictEqual(frames.length, 1, `replies came in ${frames.length} frames`)
      assert.strictEqual(frames[0].split("\n").filter((line) => line.length > 0).length, BURST)
    }).pipe(Effect.scoped)
  )

  it.live("the Effect RPC client reads every reply of a frame that carries several", () =>
    Effect.gen(function* () {
      const { url, gate, arrived } = yield* serve
      let frames = 0
      const countingSockets = Layer.succeed(Socket.WebSocketConstructor)((wsUrl, options) => {
        const ws = new globalThis.WebSocket(wsUrl, options as string | Array<string> | undefined)
        ws.addEventListener("message", () => frames++)
        return ws
      })
      const protocol = yield* Layer.build(
        RpcClient.layerProtocolSocket().pipe(
          Layer.provide(Socket.layerWebSocket(url)),
          Layer.provide(countingSockets),
          Layer.provide(RpcSerialization.layerNdjson)
        )
      )
      const client = yield* Effect.provide(RpcClient.make(Rpcs), protocol)
      const calls = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: BURST }, (_, i) => i),
          (n) => client.Double({ n }),
          {
            concurrency: "unbounded"
          }
        )
      )
      yield* Deferred.await(arrived)
      const before = frames
      yield* Deferred.succeed(gate, undefined)
      const doubled = yield* Fiber.join(calls)
      assert.deepStrictEqual(
        doubled,
        Array.from({ length: BURST }, (_, i) => i * 2)
      )
      assert.strictEqual(frames - before, 1, `replies came in ${frames - before} frames`)
    }).pipe(Effect.scoped)
  )
})
