// `npm run bench -- chaos [--json] [--seed 1] [--seconds 45] [--rate 2000]`
// Two runners (separate processes, real Postgres + Redis) under an open-loop order load over the 8 default symbols,
// while a schedule drawn from `--seed` SIGKILLs a runner (then restarts it) or SIGSTOPs one for a few seconds (its
// Postgres sessions cut, as a partition would, so its shard locks lapse) and SIGCONTs it. Then the database is
// audited: acknowledged orders missing, duplicate trades, overfills, journal gaps; plus each fault's recovery time
// (seconds until every symbol acknowledged a batch first sent after the fault) and the stale-owner writes refused.
import { parseArgs } from "node:util"
import type * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import type { SeedApi } from "../actors/api.ts"
import { prng } from "../actors/gatherer/venue.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import {
  postgresPortsOf,
  type RunnerProcess,
  redisUrl,
  staleWrites,
  startCluster,
  startProcess
} from "../test/harness.ts"
import { runLoad } from "./orderLoad.ts"
import { makeClients } from "./tps.ts"

type Client = TesseraClient.Client<SeedApi>

interface Fault {
  readonly kind: "kill" | "stop"
  readonly runner: number
  /** Seconds after the load starts. */
  readonly atS: number
  /** Seconds the runner stays down (killed: until the restart begins; stopped: until SIGCONT). */
  readonly downS: number
}

/** Faults one at a time (one runner always up), each kind at least once, until `seconds - 8` (time to recover). */
const schedule = (seed: number, seconds: number): Array<Fault> => {
  const rand = prng(seed)
  const faults: Array<Fault> = []
  const first = rand() < 0.5 ? "kill" : "stop"
  let at = 4 + rand() * 2
  for (let n = 0; ; n++) {
    const kind: Fault["kind"] =
      n === 0 ? first : n === 1 ? (first === "kill" ? "stop" : "kill") : rand() < 0.5 ? "kill" : "stop"
    const downS = kind === "kill" ? 1 + rand() * 2 : 4 + rand() * 4
    if (at + downS > seconds - 8) break
    faults.push({ kind, runner: rand() < 0.5 ? 0 : 1, atS: +at.toFixed(2), downS: +downS.toFixed(2) })
    // A restart takes a few seconds on its own; then leave the cluster time to settle before the next fault.
    at += downS + (kind === "kill" ? 6 : 2) + 4 + rand() * 4
  }
  return faults
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const run = async (args: ReadonlyArray<string>) => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: "boolean" },
      seed: { type: "string" },
      seconds: { type: "string" },
      rate: { type: "string" }
    }
  })
  const seed = Number(values.seed ?? "1")
  const seconds = Number(values.seconds ?? "45")
  const rate = Number(values.rate ?? "2000")
  const symbols = defaultSymbols.map((s) => s.symbol)
  const progress = (line: string) => process.stderr.write(`${line}\n`)
  const faults = schedule(seed, seconds)
  progress(
    `chaos seed ${seed}: ${faults.map((f) => `${f.kind} runner-${f.runner} at ${f.atS}s for ${f.downS}s`).join("; ")}`
  )

  const cluster = await startCluster(2, { label: "bench_chaos" })
  const env = { DATABASE_URL: cluster.database.url, REDIS_URL: redisUrl }
  // One client per runner slot; `up[i]` is false while runner i is killed or stopped, so the load goes elsewhere.
  const slots: Array<{ client: Client; close: () => Promise<void>; up: boolean }> = []
  try {
    for (const runner of cluster.runners) {
      const { clients, close } = await makeClients([runner.url])
      slots.push({ client: clients[0], close, up: true })
    }
    // Client i sends through runner i's gateway when it is up, else through the other one (picked per attempt).
    const routed = (i: number) =>
      ({
        "SymbolShard.PlaceBatch": (request: never) =>
          Effect.suspend(() => {
            const slot = slots[i].up ? slots[i] : (slots.find((s) => s.up) ?? slots[i])
            return slot.client["SymbolShard.PlaceBatch"](request)
          })
      }) as unknown as Client
    const clients = [routed(0), routed(1)]
    await runLoad({ clients, symbols, rate: 500, seconds: 4, tag: "warm" })

    const stale: Array<{ readonly runner: string; readonly writes: number | null }> = []
    const measured = faults.map(() => ({ startedAt: 0, firstAck: new Map<number, number>() }))
    const injector = (async () => {
      const start = Date.now()
      for (let n = 0; n < faults.length; n++) {
        const fault = faults[n]
        const wait = start + fault.atS * 1000 - Date.now()
        if (wait > 0) await sleep(wait)
        const slot = slots[fault.runner]
        const runner = cluster.runners[fault.runner]
        measured[n].startedAt = Date.now()
        slot.up = false
        if (fault.kind === "kill") {
          // Its count so far, before the process and its metrics are gone.
          stale.push({ runner: runner.name, writes: await staleWrites(runner.url).catch(() => null) })
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s SIGKILL ${runner.name}`)
          await cluster.kill9(runner)
          await slot.close()
          await sleep(fault.downS * 1000)
          const restarted: RunnerProcess = await startProcess(`${runner.name.split("~")[0]}~${n}`, { env })
          cluster.runners[fault.runner] = restarted
          const { clients: fresh, close } = await makeClients([restarted.url])
          slots[fault.runner] = { client: fresh[0], close, up: true }
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s restarted ${restarted.name}`)
        } else {
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s SIGSTOP ${runner.name}`)
          runner.child.kill("SIGSTOP")
          const ports = postgresPortsOf(runner.child.pid!)
          if (ports.length > 0) {
            cluster.database.query(
              `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_port IN (${ports.join(",")})`
            )
          }
          await sleep(fault.downS * 1000)
          runner.child.kill("SIGCONT")
          slot.up = true
          progress(`${((Date.now() - start) / 1000).toFixed(1)}s SIGCONT ${runner.name} (${ports.length} sessions cut)`)
        }
      }
    })()
    const result = await runLoad({
      clients,
      symbols,
      rate,
      seconds,
      tag: "chaos",
      keepIds: true,
      timeoutMs: 1000,
      drainSeconds: 30,
      onAck: (symbol, at, sentAt) => {
        // Only batches first sent after a fault began count toward its recovery.
        for (const m of measured) {
          if (m.startedAt > 0 && sentAt > m.startedAt && !m.firstAck.has(symbol)) m.firstAck.set(symbol, at)
        }
      }
    })
    await injector
    progress(`load done: ${result.acked} of ${result.offered} acked in ${result.seconds.toFixed(1)} s; auditing`)

    // Per symbol: psql's output is read through a 1 MiB buffer, and one query for every order id overflows it.
    const stored = new Set<string>()
    for (const symbol of symbols) {
      for (const id of cluster.database.query(`SELECT order_id FROM orders WHERE symbol = '${symbol}'`).split("\n"))
        stored.add(`${symbol} ${id}`)
    }
    const lost = result.ackedIds.filter((key) => !stored.has(key)).length
    const duplicateTrades = Number(
      cluster.database.query("SELECT COUNT(*) - COUNT(DISTINCT (symbol, trade_id)) FROM trades")
    )
    const overfills = Number(
      cluster.database.query("SELECT COUNT(*) FROM orders WHERE filled_qty::numeric > qty::numeric")
    )
    // Retention deletes a prefix of each journal; what remains must be one unbroken sequence.
    const journalGaps = Number(
      cluster.database.query(
        `SELECT COUNT(*) FROM (SELECT seq, LAG(seq) OVER (PARTITION BY symbol ORDER BY seq) AS prev
           FROM symbol_journal) j WHERE prev IS NOT NULL AND seq <> prev + 1`
      )
    )
    for (const r of cluster.runners) stale.push({ runner: r.name, writes: await staleWrites(r.url).catch(() => null) })
    const faultRows = faults.map((f, n) => {
      const m = measured[n]
      return {
        kind: f.kind,
        runner: f.runner,
        at_s: f.atS,
        down_s: f.downS,
        recovery_s:
          m.firstAck.size < symbols.length
            ? null
            : +((Math.max(...m.firstAck.values()) - m.startedAt) / 1000).toFixed(2)
      }
    })
    const summary = {
      bench: "chaos",
      seed,
      seconds,
      rate,
      offered: result.offered,
      acked: result.acked,
      lost,
      duplicate_trades: duplicateTrades,
      overfills,
      journal_gaps: journalGaps,
      stale_owner_writes: stale,
      faults: faultRows
    }
    const out = (line: string) => process.stdout.write(`${line}\n`)
    out(`chaos seed ${seed}, ${rate} orders/s for ${seconds} s over ${symbols.length} symbols, 2 runners`)
    out("fault  runner  at_s   down_s  recovery_s")
    for (const f of faultRows) {
      out(
        `${f.kind.padEnd(6)} ${String(f.runner).padEnd(7)} ${String(f.at_s).padEnd(6)} ${String(f.down_s).padEnd(7)} ${f.recovery_s ?? "never"}`
      )
    }
    out(
      `acked ${result.acked} of ${result.offered}; lost ${lost}, duplicate trades ${duplicateTrades}, overfills ${overfills}, journal gaps ${journalGaps}`
    )
    out(`stale-owner writes refused: ${stale.map((s) => `${s.runner} ${s.writes ?? "?"}`).join(", ")}`)
    if (values.json) out(JSON.stringify(summary))
  } finally {
    for (const runner of cluster.runners) runner.child.kill("SIGCONT")
    await Promise.all(slots.map((s) => s.close().catch(() => undefined)))
    await cluster.stop()
  }
}
