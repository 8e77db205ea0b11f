// Turns each bench's final JSON object into load/latency series for bench/report.ts, so every
// `npm run bench -- <name>` leaves bench/results/<name>.json and .svg behind.
import type { Series } from "./report.ts"

type Json = Record<string, any>

const num = (value: unknown): number => (typeof value === "number" && Number.isFinite(value) ? value : 0)

export const seriesOf = (name: string, result: Json): ReadonlyArray<Series> => {
  switch (name) {
    case "tps":
      return [
        {
          name: `${result.runners ?? "?"} runners, ${result.symbols ?? "?"} symbols`,
          points: (result.steps ?? []).map((step: Json) => ({
            offered: num(step.offered_per_s),
            throughput: num(step.acked_per_s),
            latencyMs: { p50: num(step.p50_ms), p99: num(step.p99_ms), p999: num(step.p999_ms) }
          }))
        }
      ]
    case "gatherer":
      return [
        {
          name: "unique deltas written (latency = sync lag)",
          points: (result.detail?.steps ?? []).map((step: Json) => ({
            offered: num(step.rate),
            throughput: num(step.written_per_s),
            latencyMs: { p50: num(step.lag_p50_ms), p99: num(step.lag_p99_ms) }
          }))
        }
      ]
    case "engine":
      return (result.scenarios ?? [result]).flatMap((scenario: Json) => [
        {
          name: `${scenario.scenario ?? "engine"} (tessera)`,
          points: [
            {
              offered: num(scenario.ops_per_s),
              throughput: num(scenario.ops_per_s),
              latencyMs: {
                p50: num(scenario.p50_us) / 1000,
                p99: num(scenario.p99_us) / 1000,
                p999: num(scenario.p999_us) / 1000
              }
            }
          ]
        },
        {
          name: `${scenario.scenario ?? "engine"} (nodejs-order-book)`,
          points: [
            {
              offered: num(scenario.peer_ops_per_s),
              throughput: num(scenario.peer_ops_per_s),
              latencyMs: {
                p50: num(scenario.peer_p50_us) / 1000,
                p99: num(scenario.peer_p99_us) / 1000,
                p999: num(scenario.peer_p999_us) / 1000
              }
            }
          ]
        }
      ])
    case "proxy":
      return [
        {
          name: "graph reads through the gateway",
          points: [
            {
              offered: num(result.requests_per_s),
              throughput: num(result.reads_per_s),
              latencyMs: { p50: num(result.p50_ms), p99: num(result.p99_ms), p999: num(result.p999_ms) }
            }
          ]
        },
        {
          name: "raw Redis GET",
          points: [{ offered: num(result.redis_get_per_s), throughput: num(result.redis_get_per_s), latencyMs: {} }]
        }
      ]
    case "failover":
      return [
        {
          name: `kill -9 under load (lost ${num(result.lost)}, duplicate trades ${num(result.duplicate_trades)})`,
          points: [
            {
              offered: num(result.rate),
              throughput: num(result.acked) / Math.max(1, num(result.offered) / Math.max(1, num(result.rate))),
              latencyMs: { failover: num(result.failover_s) * 1000 }
            }
          ]
        }
      ]
    default:
      return []
  }
}

/** The last line of `text` that parses as a JSON object, if any. */
export const lastJsonObject = (text: string): Json | undefined => {
  const lines = text.split("\n")
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim()
    if (!line.startsWith("{")) continue
    try {
      const value = JSON.parse(line)
      if (value !== null && typeof value === "object" && !Array.isArray(value)) return value
    } catch {
      // not JSON: keep looking
    }
  }
  return undefined
}
