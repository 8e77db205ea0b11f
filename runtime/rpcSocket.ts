/**
 * The gateway's RPC server protocol over WebSocket: Effect's own (`RpcServer.makeProtocolWithHttpEffectWebsocket`),
 * except that the replies written to one connection in one turn of the event loop go out as one frame. With a framing serialization (ndjson) a frame may carry several messages, which every RPC client reads
 * line by line, so a burst of replies costs one `ws.send` (one socket write) instead of one each.
 *
 * Everything else is as upstream: one client id per connection, request headers added to each request, a frame past
 * the serialization's buffer bound closes the socket with 1009, a frame that does not parse is answered a `Defect`.
 */
import { Effect, Predicate, Queue, Schema, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { constVoid } from "effect/Function"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { type Rpc, type RpcGroup, RpcMessage, RpcSerialization, RpcServer } from "effect/rpc"
import { Socket } from "effect/socket"

type FromClientEncoded = RpcMessage.FromClientEncoded
type FromServerEncoded = RpcMessage.FromServerEncoded

/** Characters of joined replies past which they are sent at once. */
const MAX_JOINED_CHARS = 64 * 1024

/**
 * A writer that joins the string frames written in one turn of the event loop into one frame: the first write of a
 * turn schedules the flush (`setImmediate`, after the turn's I/O callbacks, where Redis replies resume the handler
 * fibers). A close event flushes what is pending first, so it is the last frame.
 * Writes after `close()` are dropped: the connection is gone and a flush would wait for a reconnect forever.
 */
export const makeCoalescingWriter = (writer: Socket.Writer) => {
  let pending = ""
  let scheduled = false
  let closed = false
  const flush = () => {
    scheduled = false
    if (closed || pending.length === 0) return
    const frame = pending
    pending = ""
    Effect.runFork(Effect.ignore(writer.write(frame)))
  }
  return {
    write: (chunk: string): void => {
      if (closed) return
      pending += chunk
      // A large turn goes out in frames of about this size rather than as one frame a client may refuse.
      if (pending.length >= MAX_JOINED_CHARS) {
        const frame = pending
        pending = ""
        Effect.runFork(Effect.ignore(writer.write(frame)))
        return
      }
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
    /** Sends what is pending now, then `effect` (a close event, or a frame that cannot be joined). */
    after: <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        if (pending.length === 0) return effect
        const frame = pending
        pending = ""
        return Effect.andThen(Effect.ignore(writer.write(frame)), effect)
      }),
    close: (): void => {
      closed = true
      pending = ""
    }
  }
}

const makeSocketProtocol = Effect.gen(function* () {
  const serialization = yield* RpcSerialization.RpcSerialization
  const encodeDefect = Schema.encodeSync(serialization.codecFor(Schema.Defect()))
  const disconnects = yield* Queue.make<number>()
  // Replies join into one frame only where the serialization frames each message itself.
  const joinable = serialization.includesFraming

  let nextClientId = 0
  const clients = new Map<number, { readonly write: (response: FromServerEncoded) => Effect.Effect<void> }>()
  const clientIds = new Set<number>()

  let writeRequest!: (clientId: number, message: FromClientEncoded) => Effect.Effect<void>

  const onSocket = Effect.fnUntraced(function* (socket: Socket.Socket, headers?: ReadonlyArray<[string, string]>) {
    const scope = yield* Effect.scope
    const parser = serialization.makeUnsafe()
    const id = nextClientId++
    const writer = yield* socket.writer
    const coalescing = makeCoalescingWriter(writer)
    yield* Scope.addFinalizerExit(scope, () => {
      coalescing.close()
      clients.delete(id)
      clientIds.delete(id)
      return Queue.offer(disconnects, id)
    })

    const writeEncoded = (encoded: string | Uint8Array): Effect.Effect<void> => {
      if (joinable && typeof encoded === "string") {
        coalescing.write(encoded)
        return Effect.void
      }
      return Effect.orDie(coalescing.after(writer.write(encoded)))
    }
    const encodeDefectFrame = (cause: unknown) =>
      parser.encode(RpcMessage.ResponseDefectEncoded(encodeDefect(cause))) as string | Uint8Array
    const write = (response: FromServerEncoded): Effect.Effect<void> => {
      let encoded: string | Uint8Array | undefined
      try {
        encoded = parser.encode(response)
      } catch (cause) {
        return writeEncoded(encodeDefectFrame(cause))
      }
      return encoded === undefined ? Effect.void : writeEncoded(encoded)
    }
    clients.set(id, { write })
    clientIds.add(id)

    const processData = (data: Uint8Array | string): Effect.Effect<void, Socket.SocketError> => {
      let decoded: ReadonlyArray<FromClientEncoded>
      try {
        decoded = parser.decode(data) as ReadonlyArray<FromClientEncoded>
      } catch (cause) {
        if (Predicate.isTagged(cause, "MaxBufferSizeExceeded")) {
          return coalescing.after(writer.write(new Socket.CloseEvent(1009, String(cause))))
        }
        return writeEncoded(encodeDefectFrame(cause))
      }
      if (decoded.length === 0) return Effect.void
      if (decoded.length === 1) return writeRequest(id, withHeaders(decoded[0], headers))
      let i = 0
      return Effect.whileLoop({
        while: () => i < decoded.length,
        body: () => writeRequest(id, withHeaders(decoded[i++], headers)),
        step: constVoid
      })
    }

    yield* Effect.gen(function* () {
      const { pull } = yield* socket.reader
      while (true) {
        const frames: NonEmptyReadonlyArray<Uint8Array | string> = yield* pull
        for (let i = 0; i < frames.length; i++) yield* processData(frames[i])
      }
    }).pipe(
      Effect.catchReason("SocketError", "SocketCloseError", () => Effect.void),
      Effect.orDie
    )
  })

  const protocol = yield* RpcServer.Protocol.make((writeRequest_) => {
    writeRequest = writeRequest_
    return Effect.succeed({
      disconnects,
      send: (clientId, response) => {
        const client = clients.get(clientId)
        return client === undefined ? Effect.void : client.write(response)
      },
      end: () => Effect.void,
      clientIds: Effect.sync(() => clientIds),
      initialMessage: Effect.succeedNone,
      supportsAck: true,
      supportsTransferables: false,
      supportsSpanPropagation: true,
      supportsNotifications: true,
      codecFor: serialization.codecFor
    })
  })

  return { protocol, onSocket } as const
})

const withHeaders = (message: FromClientEncoded, headers: ReadonlyArray<[string, string]> | undefined) => {
  if (message._tag === "Request" && headers !== undefined) {
    // Most requests carry no headers of their own: they share the connection's array (the server only reads it).
    ;(message as { headers: ReadonlyArray<[string, string]> }).headers =
      message.headers === undefined || message.headers.length === 0 ? headers : headers.concat(message.headers)
  }
  return message
}

/** The protocol and the HTTP effect that upgrades a request to a WebSocket served by it. */
export const makeProtocolWithHttpEffectWebsocket = Effect.gen(function* () {
  const { onSocket, protocol } = yield* makeSocketProtocol
  const httpEffect: Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    never,
    Scope.Scope | HttpServerRequest.HttpServerRequest
  > = Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const socket = yield* Effect.orDie(request.upgrade)
    yield* onSocket(socket, Object.entries(request.headers))
    return HttpServerResponse.empty()
  })
  return { protocol, httpEffect } as const
})

/** As `RpcServer.toHttpEffectWebsocket`: starts a server for `group` on this protocol, returns the upgrade effect. */
export const toHttpEffectWebsocket = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: {
    readonly disableTracing?: boolean | undefined
    readonly spanPrefix?: string | undefined
    readonly spanAttributes?: Record<string, unknown> | undefined
    readonly disableFatalDefects?: boolean | undefined
  }
) =>
  Effect.gen(function* () {
    const { httpEffect, protocol } = yield* makeProtocolWithHttpEffectWebsocket
    yield* RpcServer.make(group, options).pipe(Effect.provideService(RpcServer.Protocol, protocol), Effect.forkScoped)
    return httpEffect
  })
