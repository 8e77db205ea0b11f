// Dispatcher for `npm run bench -- <name> [--json] [...]`. Each bench lives in bench/<name>.ts and
// exports `run(args)`; it prints a human table, and with --json its last stdout line is one JSON object.
const benches = ["engine", "tps", "gatherer", "proxy", "failover"] as const

const usage = `usage: npm run bench -- <${benches.join("|")}> [--json] [options]

  engine    matching engine ops/s and latency vs nodejs-order-book (one core, no I/O)
  tps       open-loop order load through the gateway to durable symbol shards
  gatherer  venue simulator -> 3 gatherer replicas -> deduplicators -> Postgres
  proxy     graph-proxy reads/writes through the gateway vs raw Redis GET
  failover  kill -9 a runner under load; lost orders, duplicate trades, seconds to recover
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
const mod = (await import(`./${name}.ts`)) as { run: (args: ReadonlyArray<string>) => Promise<void> }
await mod.run(args)
