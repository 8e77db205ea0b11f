// The runner-to-runner transport with TESSERA_CLUSTER_SECRET (TLS with a pre-shared key), with real runner processes
// on the real Postgres: a runner with a wrong secret, or none, stops at startup instead of joining; a connection
// without the key cannot deliver a message to a runner (not even a ping); with the key a runner joins and messages
// cross between the runners.
import { NodeClusterSocket } from "@effect/platform-node"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { MessageStorage, RunnerAddress, Runners, ShardingConfig } from "effect/cluster"
import { RpcSerialization } from "effect/rpc"
import { clusterKey, layerClientProtocolTls } from "../runtime/cluster.ts"
import { type Cluster, type RunnerProcess, redisUrl, startCluster, startProcess, whereAll } from "./harness.ts"

const secret = "cluster-secret-0123456789abcdef"
let cluster: Cluster
let first: RunnerProcess

beforeAll(async () => {
  cluster = await startCluster(1, { label: "secret", env: { TESSERA_CLUSTER_SECRET: secret } })
  first = cluster.runners[0]
}, 90_000)
afterAll(() => cluster?.stop())

/** Starts a runner on the cluster's database; its output if it stopped before it was ready. */
const join = (name: string, env: Record<string, string>) =>
  startProcess(name, { env: { DATABASE_URL: cluster.database.url, REDIS_URL: redisUrl, ...env }, timeoutMs: 60_000 })

/** Pings the first runner's transport as a cluster peer would, over `protocol`: whether a message got through. */
const pings = (protocol: Layer.Layer<Runners.RpcClientProtocol, never, RpcSerialization.RpcSerialization>) =>
  Effect.gen(function* () {
    const runners = yield* Runners.Runners
    return yield* runners.ping(RunnerAddress.make("127.0.0.1", first.runnerPort)).pipe(
      Effect.as(true),
      Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.succeed(false) }),
      Effect.catch(() => Effect.succeed(false))
    )
  }).pipe(
    Effect.provide(
      Runners.layerRpc.pipe(
        Layer.provide([protocol, MessageStorage.layerNoop, ShardingConfig.layer()]),
        Layer.provide(RpcSerialization.layerSchemaBinary())
      )
    ),
    Effect.scoped,
    Effect.runPromise
  )

describe("cluster secret (runner processes on real Postgres)", () => {
  it("without secrets, a second runner still joins a plain-TCP cluster (the startup check sees plain peers)", async () => {
    const plain = await startCluster(2, { label: "plain" })
    try {
      const answers = await Effect.runPromise(whereAll(plain.runners[1].url, ["p-1", "p-2", "p-3", "p-4"]))
      assert.notInclude(answers, "unanswered")
    } finally {
      await plain.stop()
    }
  }, 90_000)

  it("a runner with a wrong secret stops at startup, naming the variable", async () => {
    const error = await join("wrong-secret", { TESSERA_CLUSTER_SECRET: "another-secret-0123456789" }).then(
      () => "started",
      (e) => String(e)
    )
    assert.include(error, "refused this runner's transport: their TESSERA_CLUSTER_SECRET differs")
    assert.notInclude(error, "another-secret-0123456789")
  }, 90_000)

  it("a runner without a secret stops at startup", async () => {
    const error = await join("no-secret", {}).then(
      () => "started",
      (e) => String(e)
    )
    assert.include(error, "require a cluster secret: set TESSERA_CLUSTER_SECRET")
  }, 90_000)

  it("a connection without the key delivers no message; with it, it does", async () => {
    assert.isFalse(await pings(NodeClusterSocket.layerClientProtocol), "plain TCP")
    assert.isFalse(
      await pings(layerClientProtocolTls(clusterKey(Redacted.make("another-secret-0123456789")))),
      "wrong key"
    )
    assert.isTrue(await pings(layerClientProtocolTls(clusterKey(Redacted.make(secret)))), "the cluster's key")
  }, 60_000)

  it("a runner with the secret joins: both runners host entities and answer each other's messages", async () => {
    const second = await join("right-secret", { TESSERA_CLUSTER_SECRET: secret })
    cluster.runners.push(second)
    const ids = Array.from({ length: 40 }, (_, i) => `secret-${i}`)
    const expected = new Set([`127.0.0.1:${first.runnerPort}`, `127.0.0.1:${second.runnerPort}`])
    let hosts: Array<string> = []
    for (let attempt = 0; attempt < 60; attempt++) {
      // Through each gateway: an entity on the other runner is reached over the secured transport.
      const answers = (await Promise.all([first, second].map((r) => Effect.runPromise(whereAll(r.url, ids))))).flat()
      hosts = [...new Set(answers)].sort()
      if (!answers.includes("unanswered") && hosts.length === 2) break
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    assert.deepStrictEqual(hosts, [...expected].sort())
  }, 90_000)
})
