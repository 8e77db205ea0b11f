// `npm run bench -- failover [--json] [--rate 2000]`
// Two runners (separate processes, real Postgres + Redis) under a steady open-loop order load over the 8 default
// symbols; kill -9 the runner holding the most symbols; count acknowledged orders missing from the database,
// duplicated trades, and the seconds from the kill until every symbol has acknowledged a batch again.
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import { startCluster } from "../test/harness.ts"
import { runLoad } from "./orderLoad.ts"
import { makeClients } from "./tps.ts"

export const run = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: { json: { type: "boolean" }, rate: { type: "string" }, seconds: { type: "string" } }
  })
  const rate = Number(values.rate ?? "2000")
  const seconds = Number(values.seconds ?? "16")
  const symbols = defaultSymbols.map((s) => s.symbol)
  const log = (line: string) => (values.json ? process.stderr : process.stdout).write(`${line}\n`)

  const cluster = await startCluster(2, { label: "bench_failover" })
  try {
    // Warm up through both gateways so shards settle; then load through the survivor only.
    const warm = await makeClients(cluster.runners.map((r) => r.url))
    await runLoad({ clients: warm.clients, symbols, rate: 500, seconds: 4, tag: "warm" })
    // Which runner holds each symbol: Probe entities with the same id live on the same shard.
    const owners = await Effect.runPromise(
      Effect.forEach(symbols, (entityId) =>
        Effect.map(warm.clients[0]["Probe.Where"]({ entityId, payload: {} }), (r) => r.runner)
      )
    )
    await warm.close()
    const counts = cluster.runners.map((r) => owners.filter((o) => o === `127.0.0.1:${r.runnerPort}`).length)
    const victimIndex = counts[0] >= counts[1] ? 0 : 1
    const victim = cluster.runners[victimIndex]
    const survivor = cluster.runners[1 - victimIndex]
    const victimSymbols = symbols.filter((_, i) => owners[i] === `127.0.0.1:${victim.runnerPort}`)
    log(`victim ${victim.name} holds ${victimSymbols.length} of ${symbols.length} symbols`)

    const { clients, close } = await makeClients([survivor.url])
    let killedAt = 0
    const firstAckAfterKill = new Map<number, number>()
    const killer = setTimeout(
      () => {
        killedAt = Date.now()
        victim.child.kill("SIGKILL")
      },
      (seconds / 3) * 1000
    )
    const result = await runLoad({
      clients,
      symbols,
      rate,
      seconds,
      tag: "fo",
      keepIds: true,
      timeoutMs: 1000,
      drainSeconds: 30,
      onAck: (symbol, at, sentAt) => {
        // Only batches first sent after the kill count: replies already in flight prove nothing.
        if (killedAt > 0 && sentAt > killedAt && !firstAckAfterKill.has(symbol)) firstAckAfterKill.set(symbol, at)
      }
    })
    clearTimeout(killer)
    await close()
    // Seconds until every symbol acknowledged again: the latest first acknowledgement after the kill.
    const failoverS =
      firstAckAfterKill.size < symbols.length
        ? null
        : +((Math.max(...firstAckAfterKill.values()) - killedAt) / 1000).toFixed(2)
    const stored = new Set(cluster.database.query("SELECT symbol || ' ' || order_id FROM orders").split("\n"))
    const lost = result.ackedIds.filter((key) => !stored.has(key)).length
    const trades = Number(cluster.database.query("SELECT COUNT(*) FROM trades"))
    const distinct = Number(
      cluster.database.query("SELECT COUNT(*) FROM (SELECT DISTINCT symbol, trade_id FROM trades) t")
    )
    const summary = {
      bench: "failover",
      acked: result.acked,
      lost,
      duplicate_trades: trades - distinct,
      failover_s: failoverS,
      offered: result.offered,
      rate,
      victim_symbols: victimSymbols.length
    }
    log(
      `acked ${summary.acked} of ${summary.offered}, lost ${lost}, duplicate trades ${summary.duplicate_trades}, every symbol answering again ${failoverS} s after the kill`
    )
    if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  } finally {
    await cluster.stop()
  }
}
