// A load generator's RPC client: Effect RPC's ndjson wire protocol over one WebSocket, written and read with
// JSON.stringify/JSON.parse only. The gateway sees the same frames a TesseraClient sends; the generator skips the
// client's schema encoding and decoding, which cost it more CPU per order than a runner spends placing one, on the
// two cores it shares with the runners it measures.
import { WebSocket } from "ws"

/** What a request ended with: the decoded `exit` of its `Exit` message, or a local failure. */
export type WireExit =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly cause: ReadonlyArray<{ readonly _tag: string; readonly error?: unknown }> }
  | { readonly _tag: "Local"; readonly reason: "timeout" | "closed" }

export interface WireClient {
  /** Sends one request (`payload` already JSON) and resolves with its exit, or `Local` after `timeoutMs`. */
  readonly call: (tag: string, payloadJson: string, timeoutMs: number) => Promise<WireExit>
  readonly close: () => void
}

interface Waiting {
  readonly resolve: (exit: WireExit) => void
  readonly deadline: number
}

/** Opens one WebSocket to `ws(s)://<gateway>/rpc`; resolves once it is open. */
export const connectWire = (url: string): Promise<WireClient> =>
  new Promise((resolveClient, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, "ws")}/rpc`)
    const waiting = new Map<string, Waiting>()
    let nextId = 0
    let partial = ""
    const settle = (id: string, exit: WireExit) => {
      const w = waiting.get(id)
      if (w === undefined) return
      waiting.delete(id)
      w.resolve(exit)
    }
    // One sweep a second answers the requests past their deadline (no timer per request).
    const sweeper = setInterval(() => {
      const now = performance.now()
      for (const [id, w] of waiting) if (now > w.deadline) settle(id, { _tag: "Local", reason: "timeout" })
    }, 1000)
    socket.on("message", (data: Buffer) => {
      const text = partial + data.toString("utf8")
      const lines = text.split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        if (line.length === 0) continue
        const message = JSON.parse(line) as { _tag: string; requestId?: string | number; exit?: WireExit }
        if (message._tag === "Exit" && message.exit !== undefined) settle(String(message.requestId), message.exit)
      }
    })
    socket.once("open", () =>
      resolveClient({
        call: (tag, payloadJson, timeoutMs) =>
          new Promise<WireExit>((resolve) => {
            const id = String(nextId++)
            waiting.set(id, { resolve, deadline: performance.now() + timeoutMs })
            socket.send(`{"_tag":"Request","id":"${id}","tag":"${tag}","payload":${payloadJson},"headers":[]}\n`)
          }),
        close: () => {
          clearInterval(sweeper)
          socket.close()
        }
      })
    )
    socket.once("error", reject)
    socket.once("close", () => {
      clearInterval(sweeper)
      for (const id of [...waiting.keys()]) settle(id, { _tag: "Local", reason: "closed" })
    })
  })

/** The tag of a failed exit's first typed error ("defect"/"interrupted" otherwise). */
export const failureTag = (exit: WireExit): string => {
  if (exit._tag === "Local") return exit.reason
  if (exit._tag !== "Failure") return "none"
  for (const reason of exit.cause) {
    if (reason._tag === "Fail") {
      const tag = (reason.error as { readonly _tag?: unknown } | undefined)?._tag
      return typeof tag === "string" ? tag : "other"
    }
  }
  return exit.cause.some((r) => r._tag === "Interrupt") ? "interrupted" : "defect"
}
