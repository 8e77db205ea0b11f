/**
 * The venue simulator as a process:
 * `node actors/gatherer/venue-cli.ts --markets 10000 --rate 20000 --port 7480 [--seed 1] [--drop 0.01 --dup 0.01]`
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
    reorder: { type: "string", default: "0" }
  }
})

const venue = await startVenue({
  markets: Number(values.markets),
  rate: Number(values.rate),
  port: Number(values.port),
  host: values.host,
  seed: Number(values.seed),
  faults: { drop: Number(values.drop), dup: Number(values.dup), reorder: Number(values.reorder) }
})
process.stdout.write(`venue ready ${venue.url}\n`)
const stop = () => {
  void venue.close().then(() => process.exit(0))
}
process.once("SIGINT", stop)
process.once("SIGTERM", stop)
