/**
 * Read throughput through the Valkey service versus raw ioredis (the graph proxy needs 50K reads/s).
 * `npx node packages/platform/src/Valkey.bench.ts [--url redis://127.0.0.1:6379] [--reads 200000] [--json]`
 */
import { Effect } from "effect"
import { Redis } from "ioredis"
import { Cmd, layerIoredis, layerMemory, Valkey } from "./Valkey.ts"

const argument = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i === -1 ? fallback : process.argv[i + 1]
}
const url = argument("--url", "redis://127.0.0.1:6379")
const reads = Number(argument("--reads", "200000"))
const json = process.argv.includes("--json")
const prefix = `bench:valkey:${process.pid}:`
const KEYS = 1000
const CONCURRENCY = 256
const BATCH = 100
const keyOf = (i: number) => `v:${i % KEYS}`
const perSecond = (count: number, since: number) => Math.round(count / ((performance.now() - since) / 1000))

const measure = Effect.gen(function* () {
  const valkey = yield* Valkey
  yield* valkey.pipeline(Array.from({ length: KEYS }, (_, i) => Cmd.hset(keyOf(i), { props: "x".repeat(64) })))
  let since = performance.now()
  yield* Effect.forEach(
    Array.from({ length: reads }, (_, i) => i),
    (i) => valkey.hget(keyOf(i), "props"),
    {
      concurrency: CONCURRENCY,
      discard: true
    }
  )
  const single = perSecond(reads, since)
  since = performance.now()
  yield* Effect.forEach(
    Array.from({ length: Math.ceil(reads / BATCH) }, (_, b) => b),
    (b) => valkey.pipeline(Array.from({ length: BATCH }, (_, j) => Cmd.hget(keyOf(b * BATCH + j), "props"))),
    { concurrency: 16, discard: true }
  )
  const pipelined = perSecond(reads, since)
  const keys = yield* valkey.keys("*")
  for (let i = 0; i < keys.length; i += 500) yield* valkey.del(...keys.slice(i, i + 500))
  return { single, pipelined }
})

const raw = async (autoPipelining: boolean): Promise<number> => {
  const redis = new Redis(url, { enableAutoPipelining: autoPipelining, keyPrefix: prefix })
  await redis.hset("raw", { props: "x".repeat(64) })
  let issued = 0
  const since = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < reads) {
        issued++
        await redis.hget("raw", "props")
      }
    })
  )
  const result = perSecond(reads, since)
  await redis.del("raw")
  await redis.quit()
  return result
}

const autoOn = await Effect.runPromise(
  Effect.provide(measure, layerIoredis({ url, keyPrefix: prefix, autoPipelining: true }))
)
const autoOff = await Effect.runPromise(
  Effect.provide(measure, layerIoredis({ url, keyPrefix: prefix, autoPipelining: false }))
)
const memory = await Effect.runPromise(Effect.provide(measure, layerMemory))
const rawOn = await raw(true)
const rawOff = await raw(false)

const rows: Array<[string, number | string, number | string]> = [
  ["layerIoredis, auto-pipelining (default)", autoOn.single, autoOn.pipelined],
  ["layerIoredis, no auto-pipelining", autoOff.single, autoOff.pipelined],
  ["layerMemory", memory.single, memory.pipelined],
  ["raw ioredis, auto-pipelining", rawOn, "-"],
  ["raw ioredis, no auto-pipelining", rawOff, "-"]
]
console.log(
  `HGET reads/s, ${reads} reads; single: ${CONCURRENCY} concurrent; pipeline: ${BATCH} per call, 16 concurrent`
)
console.log(`${"".padEnd(42)}${"single".padStart(12)}${"pipeline".padStart(12)}`)
for (const [label, single, pipelined] of rows) {
  console.log(`${label.padEnd(42)}${single.toLocaleString().padStart(12)}${pipelined.toLocaleString().padStart(12)}`)
}
if (json) {
  console.log(
    JSON.stringify({
      reads,
      ioredisSingle: autoOn.single,
      ioredisPipelined: autoOn.pipelined,
      ioredisSingleNoAutoPipelining: autoOff.single,
      memorySingle: memory.single,
      rawIoredisSingle: rawOn
    })
  )
}
