// The cluster transport's TLS pre-shared keys on real sockets: a server accepts its own secret and the one it accepts
// while rotating, and the startup probe tells a peer with another secret from a plain-TCP peer.
import { createServer as createNetServer } from "node:net"
import * as Tls from "node:tls"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { clusterKey, probePeer, serverTlsOptions } from "./cluster.ts"

const listen = (server: { listen: (port: number, host: string, cb: () => void) => unknown; address: () => unknown }) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port))
  )

describe("cluster transport keys", () => {
  it("accepts the current and the accepted secret, refuses another; tells a plain peer apart", async () => {
    const current = clusterKey(Redacted.make("current-secret-0123456789"))
    const next = clusterKey(Redacted.make("next-secret-0123456789ab"))
    const other = clusterKey(Redacted.make("other-secret-0123456789a"))
    assert.notStrictEqual(current.identity, next.identity)
    assert.notInclude(current.identity, "current-secret")
    const tls = Tls.createServer(serverTlsOptions({ own: current, accepted: [current, next] }), (socket) =>
      socket.end()
    )
    tls.on("tlsClientError", () => {})
    // A plain-TCP peer (as Effect's plain transport) answers a ClientHello with bytes that are not TLS.
    const plain = createNetServer((socket) => socket.once("data", () => socket.end("not tls")))
    const tlsPort = await listen(tls)
    const plainPort = await listen(plain)
    try {
      const probe = (port: number, key: typeof current | undefined) =>
        Effect.runPromise(probePeer({ host: "127.0.0.1", port }, key))
      assert.strictEqual(await probe(tlsPort, current), "compatible")
      assert.strictEqual(await probe(tlsPort, next), "compatible", "the accepted secret, while rotating")
      assert.strictEqual(await probe(tlsPort, other), "other-secret")
      assert.strictEqual(await probe(tlsPort, undefined), "other-secret", "a runner without a secret")
      assert.strictEqual(await probe(plainPort, current), "plaintext")
      tls.close()
      assert.strictEqual(await probe(tlsPort, current), "unreachable")
    } finally {
      tls.close()
      plain.close()
    }
  })
})
