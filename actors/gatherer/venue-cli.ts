/**
 * The venue simulator as a process:
 * `node actors/gatherer/venue-cli.ts --markets 10000 --rate 20000 --port 7480 [--seed 1] [--drop 0.01 --dup 0.01]
 *   [--reorder 8] [--stall 0.001 --stall-ms 300] [--disconnect 0.0005] [--garbage 0.001] [--huge 0.0001]
 *   [--reset 0.001] [--snapshot503 0.1]`: per-delta drop/dup, per-tick faults per connection, venue-wide per-tick
 *   sequence resets and per-request 503 snapshots (see venue.ts).
 * Prints `venue ready <ws url>` once it listens; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from "node:util"
import { startVenue } from "./venue.ts"

const { values } = parseArgs({
  options: {
    markets: { type: "string", default: "10000" },
    rate: { type: "string", default: "1000" },
    port: { type: "string", default: "7480" },
    host: { type: "string", default: "127.0.0.1" },
    seed: { type: "string", default: "1" },
    drop: { type: "string", default: "0" },
    dup: { type: "string", default: "0" },
    reorder: { type: "string", default: "0" },
    stall: { type: "string", default: "0" },
    "stall-ms": { type: "string", default: "300" },
    disconnect: { type: "string", default: "0" },
    garbage: { type: "string", default: "0" },
    huge: { type: "string", default: "0" },
    reset: { type: "string", default: "0" },
    snapshot503: { type: "string", default: "0" }
  }
})

const venue = await startVenue({
  markets: Number(values.markets),
  rate: Number(values.rate),
  port: Number(values.port),
  host: values.host,
  seed: Number(values.seed),
  faults: {
    drop: Number(values.drop),
    dup: Number(values.dup),
    reorder: Number(values.reorder),
    stall: Number(values.stall),
    stallMs: Number(values["stall-ms"]),
    disconnect: Number(values.disconnect),
    garbage: Number(values.garbage),
    huge: Number(values.huge),
    reset: Number(values.reset),
    snapshot503: Number(values.snapshot503)
  }
})
process.stdout.write(`venue ready ${venue.url}\n`)
const stop = () => {
  void venue.close().then(() => process.exit(0))
}
process.once("SIGINT", stop)
process.once("SIGTERM", stop)
