// Dispatcher for `npm run bench -- <name> [--json] [...]`. Each bench lives in bench/<name>.ts and
// exports `run(args)`; it prints a human table, and with --json its last stdout line is one JSON object.
import { lastJsonObject, seriesOf } from "./plots.ts"
import { writeReport } from "./report.ts"

const benches = ["engine", "tps", "gatherer", "proxy", "failover", "chaos", "subscribe"] as const

const usage = `usage: npm run bench -- <${benches.join("|")}> [--json] [options]

  engine    matching engine ops/s and latency vs nodejs-order-book (one core, no I/O)
  tps       open-loop order load through the gateway to durable symbol shards
  gatherer  venue simulator -> 3 gatherer replicas -> deduplicators -> Postgres
  proxy     graph-proxy reads/writes through the gateway vs raw Redis GET
  failover  kill -9 a runner under load; lost orders, duplicate trades, seconds to recover
  chaos     seeded SIGKILL/restart and SIGSTOP/SIGCONT of runners under load; audit counts, recovery times
  subscribe 1,000 market-data subscribers on one runner: delivery latency p50/p99, delivered/published ratio
`

const [name, ...args] = process.argv.slice(2)
if (name === undefined || name === "--help" || name === "-h") {
  process.stdout.write(usage)
  process.exit(name === undefined ? 2 : 0)
}
if (!(benches as ReadonlyArray<string>).includes(name)) {
  process.stderr.write(`unknown bench "${name}"\n\n${usage}`)
  process.exit(2)
}
// Keep what the bench prints so its final JSON object can be drawn (bench/results/<name>.json + .svg).
let printed = ""
const write = process.stdout.write.bind(process.stdout)
process.stdout.write = ((chunk: string | Uint8Array, ...rest: Array<any>) => {
  printed = (printed + (typeof chunk === "string" ? chunk : Buffer.from(chunk).toString())).slice(-1_000_000)
  return write(chunk as never, ...rest)
}) as typeof process.stdout.write

const mod = (await import(`./${name}.ts`)) as { run: (args: ReadonlyArray<string>) => Promise<void> }
await mod.run(args)

const result = lastJsonObject(printed)
if (result !== undefined) {
  const paths = writeReport(name, result, seriesOf(name, result), {
    unit: name === "engine" ? "commands/s" : name === "gatherer" ? "deltas/s" : "ops/s"
  })
  process.stderr.write(`report: ${paths.json}, ${paths.svg}\n`)
}
