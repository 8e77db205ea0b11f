import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type RunnerProcess, rawRpc, rpcRequest, startProcess } from "./harness.ts"
import { families, parse, value } from "./promText.ts"

let node: RunnerProcess
let dataDir: string

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "tessera-metrics-"))
  node = await startProcess("metrics", { entry: "main", env: { TESSERA_DATA: dataDir } })
}, 90_000)
afterAll(async () => {
  node?.child.kill("SIGKILL")
  await node?.exited
  rmSync(dataDir, { recursive: true, force: true })
})

describe("/metrics on a node's gateway", () => {
  it("exports gateway RPC counts and latency, cluster, storage and process series after traffic", async () => {
    for (let i = 0; i < 5; i++) {
      const { lines } = await rawRpc(
        node.url,
        rpcRequest(String(i), "Probe.Where", { entityId: `m${i % 2}`, payload: {} })
      )
      assert.strictEqual(lines[0]?.exit?._tag, "Success")
    }
    const response = await fetch(`${node.url}/metrics`)
    assert.strictEqual(response.status, 200)
    assert.include(response.headers.get("content-type") ?? "", "text/plain")
    const text = await response.text()
    const samples = parse(text)
    const types = families(text)

    const probe = { rpc: "Probe.Where", entity: "Probe" }
    assert.strictEqual(types.get("tessera_gateway_requests_total"), "counter")
    assert.strictEqual(value(samples, "tessera_gateway_requests_total", { ...probe, outcome: "ok" }), 5)
    assert.strictEqual(value(samples, "tessera_gateway_requests_total", { ...probe, outcome: "error" }), 0)
    assert.strictEqual(types.get("tessera_gateway_request_duration_seconds"), "histogram")
    assert.strictEqual(value(samples, "tessera_gateway_request_duration_seconds_count", probe), 5)
    assert.strictEqual(value(samples, "tessera_gateway_request_duration_seconds_bucket", { ...probe, le: "+Inf" }), 5)
    const sum = value(samples, "tessera_gateway_request_duration_seconds_sum", probe)
    assert.isTrue(sum > 0 && sum < 60, `latency sum ${sum}`)
    assert.strictEqual(value(samples, "tessera_gateway_requests_in_flight"), 0)

    // Effect's cluster metrics: two Probe entities live, all 300 shards on the only node
    assert.strictEqual(value(samples, "effect_cluster_entities", { type: "Probe" }), 2)
    assert.strictEqual(value(samples, "effect_cluster_shards"), 300)
    assert.strictEqual(value(samples, "tessera_shards_held"), 300)

    assert.strictEqual(value(samples, "tessera_storage_up", { store: "sql" }), 1)
    assert.strictEqual(value(samples, "tessera_storage_up", { store: "valkey" }), 1)
    assert.isTrue(value(samples, "process_resident_memory_bytes") > 1e6)
    assert.isTrue(value(samples, "process_cpu_seconds_total") > 0)
    assert.isTrue(value(samples, "nodejs_heap_used_bytes") > 0)
    assert.isTrue(value(samples, "nodejs_eventloop_delay_p99_seconds") >= 0)
  })

  it("counts control RPCs under entity=control, and each call once", async () => {
    const before = parse(await (await fetch(`${node.url}/metrics`)).text())
    const status = { rpc: "Status", entity: "control", outcome: "ok" }
    const count = value(before, "tessera_gateway_requests_total", status)
    const { lines } = await rawRpc(node.url, rpcRequest("s", "Status", null))
    assert.strictEqual(lines[0]?.exit?._tag, "Success", JSON.stringify(lines))
    const after = parse(await (await fetch(`${node.url}/metrics`)).text())
    assert.strictEqual(value(after, "tessera_gateway_requests_total", status), count + 1)
  })
})
