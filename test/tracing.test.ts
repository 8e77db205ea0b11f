import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { SeedApi } from "../actors/api.ts"
import {
  type Cluster,
  freePort,
  type RunnerProcess,
  rawRpc,
  rpcRequest,
  startCluster,
  startProcess
} from "./harness.ts"

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
}

/** A local OTLP/HTTP receiver: collects every span POSTed to /v1/traces as JSON, with its service name. */
const spans: Array<OtlpSpan & { readonly service: string; readonly runnerPort: number }> = []
let receiver: Server
let node: RunnerProcess
let dataDir: string
let cluster: Cluster
let receiverPort: number

beforeAll(async () => {
  const port = await freePort()
  receiverPort = port
  receiver = createServer((request, response) => {
    let body = ""
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString()
    })
    request.on("end", () => {
      if (request.url === "/v1/traces") {
        const data = JSON.parse(body)
        for (const resource of data.resourceSpans ?? []) {
          const service =
            resource.resource?.attributes?.find((a: { key: string }) => a.key === "service.name")?.value?.stringValue ??
            "?"
          const runnerPort = Number(
            resource.resource?.attributes?.find((a: { key: string }) => a.key === "tessera.runner.port")?.value
              ?.intValue ?? 0
          )
          for (const scope of resource.scopeSpans ?? [])
            for (const span of scope.spans ?? []) spans.push({ ...span, service, runnerPort })
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => receiver.listen(port, "127.0.0.1", resolve))
  dataDir = mkdtempSync(join(tmpdir(), "tessera-tracing-"))
  node = await startProcess("tracing", {
    entry: "main",
    env: {
      TESSERA_DATA: dataDir,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_SERVICE_NAME: "tessera-tracing-test"
    }
  })
}, 90_000)
afterAll(async () => {
  node?.child.kill("SIGKILL")
  await node?.exited
  await cluster?.stop()
  receiver?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

const waitFor = async <A>(find: () => A | undefined, what: string, timeoutMs = 20_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = find()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`${what} not exported`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

describe("traces over OTLP/HTTP", () => {
  it("exports one trace from the client call through the gateway to the entity handler", async () => {
    // the client's own span is the root: the RPC request carries its trace id to the gateway
    const clientTrace = await Effect.gen(function* () {
      const client = yield* TesseraClient.make(SeedApi, { url: node.url })
      yield* client["Probe.Where"]({ entityId: "traced", payload: { note: "trace me" } })
      const span = yield* Effect.currentSpan
      return span.traceId
    }).pipe(Effect.withSpan("test.client"), Effect.scoped, Effect.runPromise)

    const gateway = await waitFor(
      () => spans.find((span) => span.name === "gateway.Probe.Where" && span.traceId === clientTrace),
      "gateway span in the client's trace"
    )
    const entity = await waitFor(
      () => spans.find((span) => span.name === "Probe.Where" && span.traceId === clientTrace),
      "entity handler span in the client's trace"
    )
    assert.strictEqual(gateway.service, "tessera-tracing-test")
    assert.strictEqual(entity.traceId, gateway.traceId)
    assert.notStrictEqual(entity.spanId, gateway.spanId)
    // every exported span of this trace hangs off another span of the trace or off the client's span
    const inTrace = spans.filter((span) => span.traceId === clientTrace)
    const ids = new Set(inTrace.map((span) => span.spanId))
    const orphans = inTrace.filter((span) => span.parentSpanId !== undefined && !ids.has(span.parentSpanId))
    assert.isAtMost(
      orphans.length,
      1,
      `only the gateway span may point outside (at the client): ${JSON.stringify(orphans)}`
    )
  })
})

describe("traces across runner processes", () => {
  it("follows a call from one runner's gateway over the cluster hop to the entity on the other runner", async () => {
    cluster = await startCluster(2, {
      label: "tracing",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPort}`, OTEL_SERVICE_NAME: "tessera-cluster" }
    })
    const [first, second] = cluster.runners
    // find an entity the second runner hosts, calling through the first runner's gateway
    let remoteId: string | undefined
    for (let i = 0; i < 200 && remoteId === undefined; i++) {
      const { lines } = await rawRpc(
        first.url,
        rpcRequest(String(i), "Probe.Where", { entityId: `x${i}`, payload: {} })
      )
      if (lines[0]?.exit?.value?.runner === `127.0.0.1:${second.runnerPort}`) remoteId = `x${i}`
    }
    assert.isDefined(remoteId, "some entity lives on the second runner")

    const entity = await waitFor(
      () =>
        spans.find(
          (span) =>
            span.name === "Probe.Where" && span.service === "tessera-cluster" && span.runnerPort === second.runnerPort
        ),
      "entity span from the second runner"
    )
    const gateway = await waitFor(
      () =>
        spans.find(
          (span) =>
            span.name === "gateway.Probe.Where" &&
            span.traceId === entity.traceId &&
            span.runnerPort === first.runnerPort
        ),
      "gateway span from the first runner in the same trace"
    )
    assert.strictEqual(gateway.traceId, entity.traceId)
  })
})
