// The gateway's entity-id guard on a running embedded node: 10,000 requests with bogus ids, of every seed entity type,
// are each answered `InvalidEntityId` and wake no entity; a valid id still works afterwards.
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { prng } from "@tessera/platform/Random"
import { type RunnerProcess, rawRpc, rpcRequest, startProcess, tempDataDir } from "./harness.ts"

let node: RunnerProcess
const data = tempDataDir()

beforeAll(async () => {
  node = await startProcess("guard", { entry: "main", env: { TESSERA_DATA: data.dir } })
}, 60_000)
afterAll(async () => {
  node?.child.kill("SIGKILL")
  await node?.exited
  data.remove()
})

/** Seeded, so a failure can be replayed. */
const random = prng
const next = random(20261206)
const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(next() * items.length)]
const int = (below: number) => Math.floor(next() * below)
const chars = (alphabet: string, length: number) =>
  Array.from({ length }, () => alphabet[int(alphabet.length)]).join("")

/** Ids no module may accept, with their gateway grammar (control characters, length) or the module's rule broken. */
const hostile = () =>
  pick([
    "",
    `a${String.fromCharCode(int(32))}b`,
    `\u0000${chars("ABC", 3)}`,
    `x\u007f`,
    `x\u0085y`,
    "x".repeat(257 + int(2000))
  ])
const bogusIds: Record<string, () => string> = {
  // SymbolShard: BASE-QUOTE of A-Z 0-9, and configured in the symbols table.
  SymbolShard: () =>
    pick([
      hostile,
      () => `${chars("ZQXJ", 3 + int(5))}-${chars("ZQXJ", 3 + int(5))}`,
      () => chars("abcdefgh-", 1 + int(12)),
      () => `${chars("ABC", 3)}_${chars("XYZ", 3)}`,
      () => "btc-usdt"
    ])(),
  // ProxyPartition: 0..63 in the default config.
  ProxyPartition: () =>
    pick([hostile, () => String(64 + int(1_000_000)), () => "-1", () => "1e3", () => "01", () => chars("ab", 3)])(),
  // Gatherer: replica/connection, one connection per replica by default.
  Gatherer: () => pick([hostile, () => `${int(64)}/${1 + int(99)}`, () => `${65 + int(999)}/0`, () => "0-0"])(),
  // Deduplicator: d0..d7 by default.
  Deduplicator: () => pick([hostile, () => `d${8 + int(99_999)}`, () => `x${int(8)}`, () => "d"])(),
  // Probe has no rule of its own: only the gateway's grammar.
  Probe: hostile
}
const calls: ReadonlyArray<readonly [tag: string, type: string, payload: unknown]> = [
  ["SymbolShard.Depth", "SymbolShard", {}],
  ["SymbolShard.GetOrder", "SymbolShard", { orderId: "1" }],
  ["ProxyPartition.Info", "ProxyPartition", null],
  ["ProxyPartition.GetVertex", "ProxyPartition", { id: "v1" }],
  ["Gatherer.Status", "Gatherer", null],
  ["Deduplicator.Status", "Deduplicator", null],
  ["Probe.Where", "Probe", {}]
]

const activeEntities = async () => {
  const reply = await rawRpc(node.url, rpcRequest("1", "Status", null))
  const exit = reply.lines[0]?.exit
  assert.strictEqual(exit?._tag, "Success", reply.text)
  return exit.value.runners.reduce((total: number, runner: { entities: number }) => total + runner.entities, 0)
}

describe("gateway entity-id guard (embedded node)", () => {
  it("answers 10,000 bogus ids with InvalidEntityId and starts no entity", async () => {
    const before = await activeEntities()
    const total = 10_000
    const perBody = 500
    const refusedByType: Record<string, number> = {}
    let refused = 0
    for (let start = 0; start < total; start += perBody) {
      let body = ""
      const sent = new Map<string, string>()
      for (let i = start; i < start + perBody; i++) {
        const [tag, type, payload] = calls[i % calls.length]
        const entityId = bogusIds[type]()
        sent.set(String(i + 2), `${tag} ${JSON.stringify(entityId).slice(0, 60)}`)
        body += rpcRequest(String(i + 2), tag, { entityId, payload })
      }
      const reply = await rawRpc(node.url, body)
      assert.strictEqual(reply.status, 200, reply.text.slice(0, 500))
      for (const line of reply.lines) {
        if (line?._tag !== "Exit") continue
        const what = sent.get(line.requestId) ?? line.requestId
        const error = line.exit?.cause?.[0]?.error
        assert.strictEqual(error?._tag, "InvalidEntityId", `${what}: ${JSON.stringify(line).slice(0, 300)}`)
        refusedByType[error.entityType] = (refusedByType[error.entityType] ?? 0) + 1
        sent.delete(line.requestId)
        refused++
      }
      assert.strictEqual(sent.size, 0, `unanswered: ${[...sent.values()].slice(0, 5).join(", ")}`)
    }
    assert.strictEqual(refused, total)
    assert.deepStrictEqual(Object.keys(refusedByType).sort(), [
      "Deduplicator",
      "Gatherer",
      "Probe",
      "ProxyPartition",
      "SymbolShard"
    ])
    assert.strictEqual(await activeEntities(), before, "no entity was started by a bogus id")

    // The guard lets valid ids through: a real symbol and a real partition answer, and they are now resident.
    const depth = await rawRpc(node.url, rpcRequest("1", "SymbolShard.Depth", { entityId: "BTC-USDT", payload: {} }))
    assert.strictEqual(depth.lines[0]?.exit?._tag, "Success", depth.text)
    const info = await rawRpc(node.url, rpcRequest("2", "ProxyPartition.Info", { entityId: "7", payload: null }))
    assert.strictEqual(info.lines[0]?.exit?._tag, "Success", info.text)
    assert.strictEqual(await activeEntities(), before + 2)
  }, 120_000)

  it("answers unknown RPC tags with a typed UnknownRpc naming each, beside known ones, and keeps serving", async () => {
    const body =
      rpcRequest("3", "Counter.Explode", { entityId: "c", payload: {} }) +
      rpcRequest("4", "Probe.Where", { entityId: "p-ok", payload: {} }) +
      rpcRequest("5", "x".repeat(5000), 42)
    const reply = await rawRpc(node.url, body)
    assert.strictEqual(reply.status, 200)
    const byId = new Map(reply.lines.map((line: any) => [line.requestId, line]))
    const unknown = byId.get("3")?.exit?.cause?.[0]?.error
    assert.deepInclude(unknown, { _tag: "UnknownRpc", tag: "Counter.Explode" }, reply.text)
    assert.strictEqual(byId.get("4")?.exit?._tag, "Success", reply.text)
    const long = byId.get("5")?.exit?.cause?.[0]?.error
    assert.strictEqual(long?._tag, "UnknownRpc", reply.text.slice(0, 500))
    assert.strictEqual(long?.tag.length, 256, "an unknown tag is echoed at most 256 characters long")
    assert.isNumber(await activeEntities())
  })
})
