/**
 * Valkey (Redis-compatible) access for Tessera's actors: TTL keys (dedup windows), hashes and sets (the hot tier
 * of graph partitions), streams (market data) and one-round-trip pipelines.
 *
 * - `layerIoredis({ url })` talks to a server through ioredis (`redis://` or `rediss://` URLs); with
 *   `cluster: true` to a Redis / Valkey Cluster (ElastiCache cluster mode): commands go to the node of their key's
 *   slot, MGET / DEL / EXISTS and XREAD over keys of several slots are split per slot, pipelines run one per slot.
 * - `layerMemory` keeps everything in process with the same semantics: the embedded default and the test layer.
 *
 * Values: writes take a `string` or bytes (`Uint8Array` / `Buffer`); reads return strings (UTF-8), and the
 * `...Buffer` variants (`getBuffer`, `hgetallBuffer`, ...) return the stored bytes. Stream fields are strings.
 * Members of sets and field names are strings.
 *
 * ```ts
 * const valkey = yield* Valkey
 * yield* valkey.xadd(`md:${symbol}:trades`, { price: "100.5", qty: "2" }, { maxLen: 100_000 })
 * const fresh = yield* valkey.set(`dedup:${market}:${seq}`, "1", { px: 60_000, nx: true })
 * const [vertex, edges] = yield* valkey.pipeline([Cmd.hgetall(`g:v:${id}`), Cmd.smembers(`g:e:${id}`)])
 * const news = yield* valkey.xread([[`md:${symbol}:trades`, lastId]], { block: 5_000, count: 500 })
 * ```
 *
 * @since 0.1.0
 */
import { Buffer } from "node:buffer"
import { createHash } from "node:crypto"
import { isIP } from "node:net"
import { Clock, Context, Data, Effect, Layer, Option, type Scope } from "effect"
import { type ChainableCommander, Cluster, Redis, Command as RedisCommand, type RedisOptions } from "ioredis"
import {
  Cmd,
  type Command,
  type CommandResults,
  type CommandTag,
  commandName,
  type PipelineResults,
  pairsToRecord,
  type ResultOf,
  type SetOptions,
  type StreamEntry,
  type StreamRead,
  type Value,
  type XAddOptions,
  type XReadOptions
} from "./internal/valkeyCommand.ts"
import { MemoryStore, ReplyError } from "./internal/valkeyMemoryStore.ts"
import { groupBySlot, keySlot } from "./internal/valkeySlot.ts"

export {
  Cmd,
  type Command,
  type CommandResults,
  type CommandTag,
  type PipelineResults,
  type ResultOf,
  type SetOptions,
  type StreamEntry,
  type StreamRead,
  type Value,
  type XAddOptions,
  type XReadOptions
}

/**
 * A failed Valkey command. `reason`: `WrongType` (the key holds another kind of value), `Reply` (any other
 * error reply, e.g. a bad stream id or a non-integer INCR), `Connection` (the server could not be reached in
 * time, the connection closed, or a command timed out), `InvalidUrl` (the layer's URL).
 */
export class ValkeyError extends Data.TaggedError("ValkeyError")<{
  /** The command, upper case (`HGET`, `XREAD`, `PIPELINE`, `CONNECT`). */
  readonly command: string
  readonly reason: "WrongType" | "Reply" | "Connection" | "InvalidUrl"
  readonly message: string
  /** The position of the failed command in a pipeline. */
  readonly index?: number | undefined
  readonly cause?: unknown
}> {}

/**
 * A fence for the keys of a stateful actor: the key holding the owner epoch of its current activation (`claimFence`)
 * and the epoch a writer holds. In cluster mode the fence key must share a hash slot with the keys it guards.
 */
export interface Fence {
  readonly key: string
  readonly epoch: number
}

/** Streams for XREAD: `[key, id]` pairs; the id is exclusive (`0` = from the start, `$` = only new entries). */
export type XReadStreams = ReadonlyArray<readonly [key: string, id: string]>

/**
 * The Valkey subset Tessera needs. Multi-key and multi-member arguments are rest parameters, as in Redis.
 * Every method fails with `ValkeyError`.
 */
export interface ValkeyService {
  /** GET: the value as a string, or `null`. */
  readonly get: (key: string) => Effect.Effect<string | null, ValkeyError>
  readonly getBuffer: (key: string) => Effect.Effect<Buffer | null, ValkeyError>
  /** SET with optional PX / NX / XX; `false` when NX or XX prevented the write. Clears an earlier TTL. */
  readonly set: (key: string, value: Value, options?: SetOptions) => Effect.Effect<boolean, ValkeyError>
  /** MGET: `null` for missing keys and keys that are not strings. */
  readonly mget: (...keys: ReadonlyArray<string>) => Effect.Effect<Array<string | null>, ValkeyError>
  readonly mgetBuffer: (...keys: ReadonlyArray<string>) => Effect.Effect<Array<Buffer | null>, ValkeyError>
  /** DEL: how many of the keys existed. */
  readonly del: (...keys: ReadonlyArray<string>) => Effect.Effect<number, ValkeyError>
  /** EXISTS: how many of the keys exist (a key named twice counts twice). */
  readonly exists: (...keys: ReadonlyArray<string>) => Effect.Effect<number, ValkeyError>
  /** EXPIRE (whole seconds); `false` when the key does not exist; a TTL <= 0 deletes the key. */
  readonly expire: (key: string, seconds: number) => Effect.Effect<boolean, ValkeyError>
  /** PEXPIRE (milliseconds). */
  readonly pexpire: (key: string, millis: number) => Effect.Effect<boolean, ValkeyError>
  /** PTTL: milliseconds left, `-1` without a TTL, `-2` when the key does not exist. */
  readonly pttl: (key: string) => Effect.Effect<number, ValkeyError>
  /** INCR: the new value; a missing key counts as 0; keeps the TTL. */
  readonly incr: (key: string) => Effect.Effect<number, ValkeyError>
  readonly incrby: (key: string, by: number) => Effect.Effect<number, ValkeyError>
  /** HSET of one or more fields: how many fields were new. */
  readonly hset: (key: string, fields: Readonly<Record<string, Value>>) => Effect.Effect<number, ValkeyError>
  readonly hget: (key: string, field: string) => Effect.Effect<string | null, ValkeyError>
  readonly hgetBuffer: (key: string, field: string) => Effect.Effect<Buffer | null, ValkeyError>
  readonly hmget: (key: string, ...fields: ReadonlyArray<string>) => Effect.Effect<Array<string | null>, ValkeyError>
  readonly hmgetBuffer: (
    key: string,
    ...fields: ReadonlyArray<string>
  ) => Effect.Effect<Array<Buffer | null>, ValkeyError>
  /** HGETALL: `{}` for a missing key. */
  readonly hgetall: (key: string) => Effect.Effect<Record<string, string>, ValkeyError>
  readonly hgetallBuffer: (key: string) => Effect.Effect<Record<string, Buffer>, ValkeyError>
  /** HDEL: how many fields were removed; a hash left empty is deleted. */
  readonly hdel: (key: string, ...fields: ReadonlyArray<string>) => Effect.Effect<number, ValkeyError>
  readonly hlen: (key: string) => Effect.Effect<number, ValkeyError>
  /** SADD: how many members were new. */
  readonly sadd: (key: string, ...members: ReadonlyArray<string>) => Effect.Effect<number, ValkeyError>
  /** SREM: how many members were removed; a set left empty is deleted. */
  readonly srem: (key: string, ...members: ReadonlyArray<string>) => Effect.Effect<number, ValkeyError>
  /** SMEMBERS, in no particular order. */
  readonly smembers: (key: string) => Effect.Effect<Array<string>, ValkeyError>
  readonly sismember: (key: string, member: string) => Effect.Effect<boolean, ValkeyError>
  readonly scard: (key: string) => Effect.Effect<number, ValkeyError>
  /** XADD: the new entry's id. See `XAddOptions` for ids and MAXLEN trimming. */
  readonly xadd: (
    key: string,
    fields: Readonly<Record<string, Value>>,
    options?: XAddOptions
  ) => Effect.Effect<string, ValkeyError>
  /** XRANGE from `start` (default `-`) to `end` (default `+`), inclusive; `(id` is exclusive. */
  readonly xrange: (
    key: string,
    start?: string,
    end?: string,
    count?: number
  ) => Effect.Effect<Array<StreamEntry>, ValkeyError>
  /** XREVRANGE from `end` (default `+`) down to `start` (default `-`). */
  readonly xrevrange: (
    key: string,
    end?: string,
    start?: string,
    count?: number
  ) => Effect.Effect<Array<StreamEntry>, ValkeyError>
  readonly xlen: (key: string) => Effect.Effect<number, ValkeyError>
  /**
   * XREAD over several streams: the entries after each id, only for streams that have some. With `block`, waits
   * until an entry arrives (an empty array on timeout); a blocked read never delays other commands, and
   * interrupting it is safe.
   */
  readonly xread: (streams: XReadStreams, options?: XReadOptions) => Effect.Effect<Array<StreamRead>, ValkeyError>
  /** Keys matching a glob pattern (SCAN, not KEYS: safe on a live server, but for tests and operations only). */
  readonly keys: (pattern: string) => Effect.Effect<Array<string>, ValkeyError>
  /**
   * Sends the commands in ONE round trip (build them with `Cmd`) and returns their results in order. Commands
   * are not atomic: if one fails the others still run, and the effect fails with the first error (its `index`).
   */
  readonly pipeline: <const Cs extends ReadonlyArray<Command>>(
    commands: Cs
  ) => Effect.Effect<PipelineResults<Cs>, ValkeyError>
  /**
   * Runs the commands, in one round trip and with no other command in between, only while `fence.key` holds
   * `fence.epoch`: their results, or `undefined` when the fence holds anything else (a newer owner claimed it), and
   * then nothing ran. A server runs them as a Lua script; as in a script, a command that fails does not undo the
   * ones before it.
   */
  readonly fenced: <const Cs extends ReadonlyArray<Command>>(
    fence: Fence,
    commands: Cs
  ) => Effect.Effect<PipelineResults<Cs> | undefined, ValkeyError>
  /**
   * A new activation's claim: raises `key` to `epoch` unless it already holds a higher epoch, in which case it
   * answers `false` (a newer owner claimed it) and changes nothing. Claiming the epoch it holds again is `true`.
   */
  readonly claimFence: (key: string, epoch: number) => Effect.Effect<boolean, ValkeyError>
}

/**
 * The Valkey service.
 *
 * @since 0.1.0
 */
export class Valkey extends Context.Service<Valkey, ValkeyService>()("tessera/runtime/Valkey") {}

/** The primitives an implementation provides; the rest of the service derives from them. */
interface Primitives {
  readonly exec: <C extends Command>(command: C) => Effect.Effect<ResultOf<C>, ValkeyError>
  readonly pipeline: (commands: ReadonlyArray<Command>) => Effect.Effect<Array<unknown>, ValkeyError>
  readonly fenced: (
    fence: Fence,
    commands: ReadonlyArray<Command>
  ) => Effect.Effect<Array<unknown> | undefined, ValkeyError>
  readonly claimFence: ValkeyService["claimFence"]
  readonly xread: ValkeyService["xread"]
  readonly keys: ValkeyService["keys"]
}

const fromPrimitives = ({ claimFence, exec, fenced, keys, pipeline, xread }: Primitives): ValkeyService => ({
  get: (key) => exec(Cmd.get(key)),
  getBuffer: (key) => exec(Cmd.getBuffer(key)),
  set: (key, value, options) => exec(Cmd.set(key, value, options)),
  mget: (...keys) => exec(Cmd.mget(...keys)),
  mgetBuffer: (...keys) => exec(Cmd.mgetBuffer(...keys)),
  del: (...keys) => exec(Cmd.del(...keys)),
  exists: (...keys) => exec(Cmd.exists(...keys)),
  expire: (key, seconds) => exec(Cmd.expire(key, seconds)),
  pexpire: (key, millis) => exec(Cmd.pexpire(key, millis)),
  pttl: (key) => exec(Cmd.pttl(key)),
  incr: (key) => exec(Cmd.incr(key)),
  incrby: (key, by) => exec(Cmd.incrby(key, by)),
  hset: (key, fields) => exec(Cmd.hset(key, fields)),
  hget: (key, field) => exec(Cmd.hget(key, field)),
  hgetBuffer: (key, field) => exec(Cmd.hgetBuffer(key, field)),
  hmget: (key, ...fields) => exec(Cmd.hmget(key, ...fields)),
  hmgetBuffer: (key, ...fields) => exec(Cmd.hmgetBuffer(key, ...fields)),
  hgetall: (key) => exec(Cmd.hgetall(key)),
  hgetallBuffer: (key) => exec(Cmd.hgetallBuffer(key)),
  hdel: (key, ...fields) => exec(Cmd.hdel(key, ...fields)),
  hlen: (key) => exec(Cmd.hlen(key)),
  sadd: (key, ...members) => exec(Cmd.sadd(key, ...members)),
  srem: (key, ...members) => exec(Cmd.srem(key, ...members)),
  smembers: (key) => exec(Cmd.smembers(key)),
  sismember: (key, member) => exec(Cmd.sismember(key, member)),
  scard: (key) => exec(Cmd.scard(key)),
  xadd: (key, fields, options) => exec(Cmd.xadd(key, fields, options)),
  xrange: (key, start, end, count) => exec(Cmd.xrange(key, start, end, count)),
  xrevrange: (key, end, start, count) => exec(Cmd.xrevrange(key, end, start, count)),
  xlen: (key) => exec(Cmd.xlen(key)),
  xread,
  keys,
  pipeline: pipeline as ValkeyService["pipeline"],
  fenced: fenced as ValkeyService["fenced"],
  claimFence
})

/** The server's answer to a negative or fractional BLOCK, given by both implementations before sending. */
const checkBlock = (block: number | undefined): ValkeyError | undefined =>
  block === undefined || (Number.isInteger(block) && block >= 0)
    ? undefined
    : new ValkeyError({
        command: "XREAD",
        reason: "Reply",
        message: block < 0 ? "ERR timeout is negative" : "ERR timeout is not an integer or out of range"
      })

const replyReason = (message: string): "WrongType" | "Reply" =>
  message.startsWith("WRONGTYPE") ? "WrongType" : "Reply"

// ---------------------------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------------------------

/** How often the memory layer deletes expired keys that nobody reads (reads expire them on access anyway). */
const SWEEP_INTERVAL_MS = 1000

const memoryError = (command: string, error: ReplyError, index?: number) =>
  new ValkeyError({ command, reason: replyReason(error.message), message: error.message, index })

/**
 * Builds the in-memory implementation. Time comes from the `Clock` in context when it is built, so under
 * `TestClock` TTLs and generated stream ids follow the test clock. Expired keys are dropped on access and by a
 * sweep every second on an unref'd timer that stops with the scope.
 */
export const makeMemory: Effect.Effect<ValkeyService, never, Scope.Scope> = Effect.gen(function* () {
  const clock = yield* Clock.Clock
  const store = new MemoryStore(() => clock.currentTimeMillisUnsafe())
  yield* Effect.acquireRelease(
    Effect.sync(() => startTimer(() => store.sweep(), SWEEP_INTERVAL_MS)),
    (stop) => Effect.sync(stop)
  )

  const exec = <C extends Command>(command: C): Effect.Effect<ResultOf<C>, ValkeyError> =>
    Effect.suspend(() => {
      try {
        return Effect.succeed(store.exec(command))
      } catch (error) {
        if (error instanceof ReplyError) return Effect.fail(memoryError(commandName(command._tag), error))
        return Effect.die(error)
      }
    })

  /** Runs the commands in one synchronous step (nothing else runs in between). */
  const runAll = (commands: ReadonlyArray<Command>): Effect.Effect<Array<unknown>, ValkeyError> => {
    const results: Array<unknown> = new Array(commands.length)
    let failure: ValkeyError | undefined
    for (let i = 0; i < commands.length; i++) {
      try {
        results[i] = store.exec(commands[i])
      } catch (error) {
        if (!(error instanceof ReplyError)) return Effect.die(error)
        failure ??= memoryError(commandName(commands[i]._tag), error, i)
      }
    }
    return failure === undefined ? Effect.succeed(results) : Effect.fail(failure)
  }
  const pipeline = (commands: ReadonlyArray<Command>): Effect.Effect<Array<unknown>, ValkeyError> =>
    Effect.suspend(() => runAll(commands))

  /** The fence key's epoch, or undefined when it holds none (or not a string). */
  const heldEpoch = (key: string): string | null => {
    try {
      return store.exec(Cmd.get(key))
    } catch {
      return null
    }
  }
  const fenced = (fence: Fence, commands: ReadonlyArray<Command>) =>
    Effect.suspend(() => (heldEpoch(fence.key) === String(fence.epoch) ? runAll(commands) : Effect.succeed(undefined)))
  const claimFence = (key: string, epoch: number) =>
    Effect.suspend(() => {
      const held = heldEpoch(key)
      if (held !== null && Number(held) > epoch) return Effect.succeed(false)
      return Effect.as(runAll([Cmd.set(key, String(epoch))]), true)
    })

  const xread = (streams: XReadStreams, options?: XReadOptions): Effect.Effect<Array<StreamRead>, ValkeyError> =>
    Effect.suspend(() => {
      const count = options?.count
      const block = options?.block
      const invalid = checkBlock(block)
      if (invalid !== undefined) return Effect.fail(invalid)
      let after: ReturnType<MemoryStore["resolveReadIds"]>
      try {
        after = store.resolveReadIds(streams)
        if (block === undefined) return Effect.succeed(store.read(streams, after, count))
      } catch (error) {
        if (error instanceof ReplyError) return Effect.fail(memoryError("XREAD", error))
        return Effect.die(error)
      }
      // Reads and registers in one synchronous step, so an XADD cannot slip in between.
      const wait = Effect.callback<Array<StreamRead>, ValkeyError>((resume) => {
        const attempt = (): boolean => {
          try {
            const found = store.read(streams, after, count)
            if (found.length === 0) return false
            resume(Effect.succeed(found))
          } catch (error) {
            resume(error instanceof ReplyError ? Effect.fail(memoryError("XREAD", error)) : Effect.die(error))
          }
          return true
        }
        if (attempt()) return
        const unregister = store.onAdd(
          streams.map(([key]) => key),
          () => {
            if (attempt()) unregister()
          }
        )
        return Effect.sync(unregister)
      })
      if (block === 0) return wait
      return Effect.map(
        Effect.timeoutOption(wait, block),
        Option.getOrElse((): Array<StreamRead> => [])
      )
    })

  const keys = (pattern: string) => Effect.sync(() => store.keys(pattern))

  return Valkey.of(fromPrimitives({ exec, pipeline, fenced, claimFence, xread, keys }))
})

/**
 * The in-memory Valkey: the embedded default (`npm start` without `REDIS_URL`) and the layer for tests of actors.
 *
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<Valkey> = Layer.effect(Valkey, makeMemory)

/** An interval timer that never keeps the process alive (Node and Deno); returns its stop function. */
const startTimer = (f: () => void, millis: number): (() => void) => {
  const handle: unknown = setInterval(f, millis)
  if (typeof handle === "object" && handle !== null && "unref" in handle && typeof handle.unref === "function") {
    handle.unref()
  } else if (typeof handle === "number") {
    ;(globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno?.unrefTimer?.(handle)
  }
  return () => clearInterval(handle as ReturnType<typeof setInterval>)
}

// ---------------------------------------------------------------------------------------------------------------
// ioredis
// ---------------------------------------------------------------------------------------------------------------

/** Connection settings taken from a `redis://` / `rediss://` URL. */
export interface RedisUrl {
  readonly host: string
  readonly port: number
  readonly username: string | undefined
  readonly password: string | undefined
  readonly db: number
  readonly tls: boolean
}

/**
 * Parses `redis[s]://[[user]:password@]host[:port][/db]` (also `valkey[s]://`); `rediss` means TLS. Throws an
 * `Error` naming the problem (the URL itself is not repeated, as it may hold a password).
 */
export const parseRedisUrl = (text: string): RedisUrl => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new Error("not a URL (expected redis://host:port or rediss://host:port)")
  }
  const scheme = url.protocol.slice(0, -1)
  if (scheme !== "redis" && scheme !== "rediss" && scheme !== "valkey" && scheme !== "valkeys") {
    throw new Error(`unsupported scheme "${scheme}:" (expected redis: or rediss:)`)
  }
  if (url.hostname === "") throw new Error("the URL has no host")
  const path = url.pathname.replace(/^\/+/, "")
  if (path !== "" && !/^\d+$/.test(path)) throw new Error(`the database "${path}" is not a number`)
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port === "" ? 6379 : Number(url.port),
    username: url.username === "" ? undefined : decodeURIComponent(url.username),
    password: url.password === "" ? undefined : decodeURIComponent(url.password),
    db: path === "" ? 0 : Number(path),
    tls: scheme === "rediss" || scheme === "valkeys"
  }
}

export interface IoredisOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS. */
  readonly url: string
  /** Prepended to every key (and removed from keys returned by `keys` and `xread`). */
  readonly keyPrefix?: string | undefined
  /** Milliseconds for one connection attempt. Default 3000. */
  readonly connectTimeout?: number | undefined
  /**
   * Reconnection attempts a command waits through before it fails with a `Connection` error. Default 3: with
   * the reconnection backoff (50, 100, 200, 400 ms, then up to 1 s) a command fails within about a second when
   * the server refuses connections (a few seconds while it stays down), and within about
   * `4 * (connectTimeout + 1 s)` when it does not answer at all.
   */
  readonly maxRetriesPerRequest?: number | undefined
  /**
   * Fail a command with no reply after this many milliseconds, with a `Connection` error, so a server that stops
   * answering (a black-holed network keeps the socket open) cannot hold callers. Default 2000. XREAD BLOCK is not
   * bound by it: a blocked read fails when no reply came within its block time plus a grace.
   */
  readonly commandTimeout?: number | undefined
  /**
   * Send the commands issued in the same tick as one write (ioredis auto-pipelining). Default true: concurrent
   * single reads (the graph proxy's pattern) then cost about as much as a pipeline.
   */
  readonly autoPipelining?: boolean | undefined
  /**
   * Cluster mode (`REDIS_CLUSTER`): the URL's host is a seed node (ElastiCache: the configuration endpoint) and
   * the client follows the cluster's slot map. Keys that must be read or written together belong in one slot:
   * give them a hash tag (`md:{BTC-USD}:trades`). Default false.
   */
  readonly cluster?: boolean | undefined
  /**
   * More seed nodes for cluster mode, `host:port` each (same credentials and TLS as the URL): any one that
   * answers gives the slot map.
   */
  readonly seeds?: ReadonlyArray<string> | undefined
  /**
   * Read from replicas: with `cluster`, reads go to each slot's replicas (ioredis sends `READONLY` on those
   * connections); without it the URL names a replica node, which serves reads as it is. Writes fail there. Default
   * false.
   */
  readonly replicaReads?: boolean | undefined
}

/** Parses a `host:port` seed node (`[::1]:7000` for IPv6). */
const parseSeed = (seed: string): { readonly host: string; readonly port: number } => {
  let url: URL
  try {
    url = new URL(`redis://${seed}`)
  } catch {
    throw new Error(`"${seed}" is not host:port`)
  }
  if (url.hostname === "" || url.port === "" || `${url.host}` !== seed.toLowerCase()) {
    throw new Error(`"${seed}" is not host:port`)
  }
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port) }
}

/** Default `commandTimeout`: far above a healthy round trip, well under the shard-lock expiry. */
const DEFAULT_COMMAND_TIMEOUT_MS = 2000
/** Longest BLOCK of one XREAD on the wire; `block: 0` (forever) repeats such reads. */
const BLOCK_CHUNK_MS = 10_000
/** Idle blocking connections kept for the next XREAD BLOCK. */
const MAX_IDLE_BLOCKING = 4

type Raw = unknown
type Arg = string | Buffer | number
type Client = Redis | Cluster

/** Cluster mode: one slot's piece of a command; `positions` are its keys' places in a split MGET / DEL / EXISTS. */
interface Part {
  readonly slot: number
  readonly name: string
  readonly args: Array<Arg>
  readonly positions: ReadonlyArray<number> | undefined
}

const multiKeys = (command: Command): ReadonlyArray<string> | undefined =>
  command._tag === "mget" || command._tag === "mgetBuffer" || command._tag === "del" || command._tag === "exists"
    ? command.keys
    : undefined

/** The reply a split command would have had: MGET values back in key order, DEL / EXISTS counts summed. */
const mergeParts = (command: Command, parts: ReadonlyArray<Part>, raws: ReadonlyArray<Raw>): Raw => {
  if (parts.length === 1) return raws[0]
  if (command._tag === "mget" || command._tag === "mgetBuffer") {
    const values: Array<unknown> = new Array(command.keys.length)
    for (let p = 0; p < parts.length; p++) {
      const positions = parts[p].positions ?? []
      const got = raws[p] as Array<unknown>
      for (let j = 0; j < positions.length; j++) values[positions[j]] = got[j]
    }
    return values
  }
  let sum = 0
  for (const raw of raws) sum += Number(raw)
  return sum
}

/** XREAD answers of several reads, in the order of the caller's streams (each stream once). */
const inStreamOrder = (streams: XReadStreams, reads: ReadonlyArray<StreamRead>): Array<StreamRead> => {
  const byKey = new Map<string, StreamRead>()
  for (const read of reads) if (!byKey.has(read.key)) byKey.set(read.key, read)
  const out: Array<StreamRead> = []
  for (const [key] of streams) {
    const read = byKey.get(key)
    if (read !== undefined) {
      out.push(read)
      byKey.delete(key)
    }
  }
  return out
}

const toArg = (value: Value): string | Buffer =>
  typeof value === "string" || Buffer.isBuffer(value)
    ? value
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength)

const pushFields = (args: Array<Arg>, fields: Readonly<Record<string, Value>>): Array<Arg> => {
  for (const name in fields) args.push(name, toArg(fields[name]))
  return args
}

const isBufferReply = (tag: CommandTag): boolean => tag.endsWith("Buffer")

/**
 * Sends a command whose reply stays as bytes. Through the named `getBuffer`-style method, not `callBuffer`:
 * ioredis 6 auto-pipelining drops the command name of `callBuffer`.
 */
const callBuffer = (target: Client | ChainableCommander, name: string, args: Array<Arg>): Promise<unknown> =>
  (target as unknown as Record<string, (args: Array<Arg>) => Promise<unknown>>)[`${name}Buffer`](args)

/** The wire name and arguments of a command, keys prefixed. */
const encode = (c: Command, k: (key: string) => string): [name: string, args: Array<Arg>] => {
  switch (c._tag) {
    case "get":
    case "getBuffer":
      return ["get", [k(c.key)]]
    case "set": {
      const args: Array<Arg> = [k(c.key), toArg(c.value)]
      const o = c.options
      if (o !== undefined) {
        if (o.px !== undefined) args.push("PX", o.px)
        if (o.nx) args.push("NX")
        if (o.xx) args.push("XX")
      }
      return ["set", args]
    }
    case "mget":
    case "mgetBuffer":
      return ["mget", c.keys.map(k)]
    case "del":
      return ["del", c.keys.map(k)]
    case "exists":
      return ["exists", c.keys.map(k)]
    case "expire":
      return ["expire", [k(c.key), c.seconds]]
    case "pexpire":
      return ["pexpire", [k(c.key), c.millis]]
    case "pttl":
      return ["pttl", [k(c.key)]]
    case "incr":
      return ["incr", [k(c.key)]]
    case "incrby":
      return ["incrby", [k(c.key), c.by]]
    case "hset":
      return ["hset", pushFields([k(c.key)], c.fields)]
    case "hget":
    case "hgetBuffer":
      return ["hget", [k(c.key), c.field]]
    case "hmget":
    case "hmgetBuffer":
      return ["hmget", [k(c.key), ...c.fields]]
    case "hgetall":
    case "hgetallBuffer":
      return ["hgetall", [k(c.key)]]
    case "hdel":
      return ["hdel", [k(c.key), ...c.fields]]
    case "hlen":
      return ["hlen", [k(c.key)]]
    case "sadd":
      return ["sadd", [k(c.key), ...c.members]]
    case "srem":
      return ["srem", [k(c.key), ...c.members]]
    case "smembers":
      return ["smembers", [k(c.key)]]
    case "sismember":
      return ["sismember", [k(c.key), c.member]]
    case "scard":
      return ["scard", [k(c.key)]]
    case "xadd": {
      const args: Array<Arg> = [k(c.key)]
      const o = c.options
      if (o?.maxLen !== undefined) {
        if (o.approximate === false) args.push("MAXLEN", o.maxLen)
        else args.push("MAXLEN", "~", o.maxLen)
      }
      args.push(o?.id ?? "*")
      return ["xadd", pushFields(args, c.fields)]
    }
    case "xrange":
      return [
        "xrange",
        c.count === undefined ? [k(c.key), c.start, c.end] : [k(c.key), c.start, c.end, "COUNT", c.count]
      ]
    case "xrevrange":
      return [
        "xrevrange",
        c.count === undefined ? [k(c.key), c.end, c.start] : [k(c.key), c.end, c.start, "COUNT", c.count]
      ]
    case "xlen":
      return ["xlen", [k(c.key)]]
  }
}

const decodeEntries = (raw: Raw): Array<StreamEntry> => {
  const list = raw as Array<[string, Array<string>]> | null
  if (list === null) return []
  const out: Array<StreamEntry> = new Array(list.length)
  for (let i = 0; i < list.length; i++) out[i] = { id: list[i][0], fields: pairsToRecord(list[i][1] ?? [], String) }
  return out
}

const decodeHash = <A>(raw: Raw, key: (a: A) => string): Record<string, A> =>
  Array.isArray(raw) ? pairsToRecord(raw as Array<A>, key) : ((raw ?? {}) as Record<string, A>)

/**
 * `fenced` on a server: KEYS[1] the fence key, ARGV[1] the epoch, ARGV[2] the number of commands, then each command
 * as its word count and its words. Nothing runs unless the fence holds the epoch (a nil reply then).
 */
const FENCED_SCRIPT = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local out, i = {}, 3
for c = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[i])
  out[c] = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return out`

/** `claimFence` on a server: KEYS[1] the fence key, ARGV[1] the epoch; 0 when the key holds a higher epoch. */
const CLAIM_FENCE_SCRIPT = `local held = tonumber(redis.call('GET', KEYS[1]))
if held ~= nil and held > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex")
const FENCED_SHA = sha1(FENCED_SCRIPT)
const CLAIM_FENCE_SHA = sha1(CLAIM_FENCE_SCRIPT)

/** Turns a server reply into the command's result type. */
const decode = (tag: CommandTag, raw: Raw): unknown => {
  switch (tag) {
    case "set":
      return raw !== null
    case "expire":
    case "pexpire":
    case "sismember":
      return raw === 1
    case "hgetall":
      return decodeHash(raw, String)
    case "hgetallBuffer":
      return decodeHash<Buffer>(raw, (b) => b.toString("utf8"))
    case "xadd":
      return String(raw)
    case "xrange":
    case "xrevrange":
      return decodeEntries(raw)
    default:
      return raw
  }
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const isReplyError = (error: unknown): boolean => error instanceof Error && error.name === "ReplyError"

interface PendingPipeline {
  readonly commands: ReadonlyArray<Command>
  readonly resolve: (results: Array<unknown>) => void
  readonly reject: (error: unknown) => void
  /** One command of `exec`, not a caller's pipeline: its failure carries no index. */
  readonly single?: boolean
}

/** The socket of an ioredis connection (not in its public types). */
const socketOf = (redis: Redis) => (redis as unknown as { readonly stream: NodeJS.WritableStream }).stream

/**
 * Sends `commands` on `redis` in one socket write, in order, without an ioredis `Pipeline`. Measured on the graph
 * gateway's read mix (3.4K pipelines/s): every ioredis `Pipeline` object, including the per-tick ones of its
 * auto-pipelining, outlived young-generation collections, so about 7 MB survived each scavenge and each paused
 * the process 10-15 ms; the same commands written through one shared write target left about 10 KB and pauses
 * under 1 ms. The write target is what a `Pipeline` hands ioredis (`isPipeline` + `destination`): while the
 * commands are being sent their bytes are gathered, then written at once before anything else can write; a
 * command that waited in the offline queue (not connected yet, or resent after a reconnect) is written on its own
 * when ioredis sends it, so the bytes on the socket always follow ioredis's queue of commands awaiting replies.
 */
const writeJoined = (redis: Redis, commands: ReadonlyArray<RedisCommand>): void => {
  let gathering = true
  let text = ""
  let buffers: Array<Buffer> | undefined
  const target = {
    isPipeline: true,
    destination: { redis },
    write: (writable: string | Buffer): void => {
      if (!gathering) {
        socketOf(redis).write(writable)
        return
      }
      if (typeof writable === "string" && text.length + writable.length < MAX_JOINED_TEXT) {
        text += writable
        return
      }
      buffers ??= []
      if (text.length > 0) buffers.push(Buffer.from(text, "utf8"))
      text = ""
      buffers.push(typeof writable === "string" ? Buffer.from(writable, "utf8") : writable)
    }
  }
  for (let i = 0; i < commands.length; i++) redis.sendCommand(commands[i], target as never)
  gathering = false
  if (buffers !== undefined) {
    if (text.length > 0) buffers.push(Buffer.from(text, "utf8"))
    socketOf(redis).write(Buffer.concat(buffers))
  } else if (text.length > 0) socketOf(redis).write(text)
}

/** Past this many UTF-16 units a joined write gathers Buffers instead of one string. */
const MAX_JOINED_TEXT = 1 << 24

/**
 * Builds the ioredis implementation: one connection for ordinary commands and pipelines (connected on first
 * use, reconnecting with backoff), plus a small pool of connections for XREAD BLOCK so that a blocked read
 * never stalls other commands. Everything is closed with the scope (QUIT, then disconnect). In cluster mode
 * each of these is an ioredis `Cluster` client (a connection per node it talks to).
 */
export const makeIoredis = (options: IoredisOptions): Effect.Effect<ValkeyService, ValkeyError, Scope.Scope> =>
  Effect.gen(function* () {
    const invalidUrl = (message: string) => new ValkeyError({ command: "CONNECT", reason: "InvalidUrl", message })
    const url = yield* Effect.try({
      try: () => parseRedisUrl(options.url),
      catch: (error) => invalidUrl(`REDIS_URL: ${errorMessage(error)}`)
    })
    const clustered = options.cluster === true
    if (!clustered && options.seeds !== undefined && options.seeds.length > 0) {
      return yield* Effect.fail(invalidUrl("seed nodes are for cluster mode only"))
    }
    if (clustered && url.db !== 0) {
      return yield* Effect.fail(invalidUrl(`REDIS_URL: cluster mode has only database 0, not ${url.db}`))
    }
    const seeds = yield* Effect.try({
      try: () => [{ host: url.host, port: url.port }, ...(options.seeds ?? []).map(parseSeed)],
      catch: (error) => invalidUrl(`cluster seed node: ${errorMessage(error)}`)
    })
    const prefix = options.keyPrefix ?? ""
    const k = prefix === "" ? (key: string) => key : (key: string) => prefix + key
    const unprefix = prefix === "" ? (key: string) => key : (key: string) => key.slice(prefix.length)
    const maxRetries = options.maxRetriesPerRequest ?? 3
    const connectTimeout = options.connectTimeout ?? 3000
    const backoff = (times: number) => Math.min(50 * 2 ** Math.min(times - 1, 5), 1000)
    let lastConnectionError: string | undefined

    const nodeOptions = {
      username: url.username,
      password: url.password,
      // RESP2: plain array replies, the same shape from every server version.
      protocol: 2,
      connectTimeout,
      maxRetriesPerRequest: maxRetries,
      commandTimeout: options.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT_MS,
      connectionName: "tessera"
    } satisfies RedisOptions

    const redisOptions: RedisOptions = {
      ...nodeOptions,
      host: url.host,
      port: url.port,
      db: url.db,
      // SNI only for names: an IP address as servername is refused by RFC 6066 (and Node warns).
      ...(url.tls ? { tls: isIP(url.host) === 0 ? { servername: url.host } : {} } : {}),
      lazyConnect: true,
      retryStrategy: backoff,
      enableAutoPipelining: options.autoPipelining ?? true
    }

    // A cluster client queues commands while it has no slot map and retries forever: a command first waits
    // for `ready` here instead, and fails after `maxRetriesPerRequest` failed attempts, as on a single node.
    const readyWaiters = new Map<Cluster, Array<{ resolve: () => void; reject: (error: Error) => void }>>()
    const settleWaiters = (cluster: Cluster, error: Error | undefined): void => {
      const waiters = readyWaiters.get(cluster)
      if (waiters === undefined) return
      readyWaiters.delete(cluster)
      for (const waiter of waiters) error === undefined ? waiter.resolve() : waiter.reject(error)
    }
    /** Undefined when commands can go out now (always on a single node), else a promise of readiness. */
    const ready = (client: Client): Promise<void> | undefined => {
      if (!(client instanceof Cluster) || client.status === "ready") return undefined
      if (client.status === "end") return Promise.reject(new Error("Connection is closed."))
      return new Promise<void>((resolve, reject) => {
        const waiters = readyWaiters.get(client)
        if (waiters === undefined) readyWaiters.set(client, [{ resolve, reject }])
        else waiters.push({ resolve, reject })
        if (client.status === "wait") client.connect().catch(() => undefined)
      })
    }
    const whenReady = <A>(client: Client, f: () => Promise<A>): Promise<A> => {
      const waiting = ready(client)
      return waiting === undefined ? f() : waiting.then(f)
    }

    const connect = (extra: RedisOptions): Client => {
      if (!clustered) {
        const redis = new Redis({ ...redisOptions, ...extra })
        // Without a listener ioredis prints every failed attempt; the commands report the failure instead.
        redis.on("error", (error: unknown) => {
          lastConnectionError = errorMessage(error)
        })
        return redis
      }
      const { enableAutoPipelining, ...nodeExtra } = extra
      const cluster: Cluster = new Cluster(seeds, {
        lazyConnect: true,
        enableAutoPipelining: enableAutoPipelining ?? options.autoPipelining ?? true,
        // ElastiCache with TLS: connect to the names the cluster announces, so certificates match.
        dnsLookup: (address, callback) => callback(null, address),
        slotsRefreshTimeout: connectTimeout,
        ...(options.replicaReads === true ? { scaleReads: "slave" as const } : {}),
        clusterRetryStrategy: (times) => {
          if (times > maxRetries) {
            const detail = lastConnectionError === undefined ? "" : ` (last connection error: ${lastConnectionError})`
            settleWaiters(cluster, new Error(`None of the cluster nodes is available${detail}`))
          }
          return backoff(times)
        },
        redisOptions: { ...nodeOptions, ...(url.tls ? { tls: {} } : {}), ...nodeExtra }
      })
      // The cluster's own errors ("Failed to refresh slots cache.") hide why; the nodes' errors say it.
      cluster.on("error", () => undefined)
      cluster.on("node error", (error: unknown, node: unknown) => {
        lastConnectionError = `${String(node)}: ${errorMessage(error)}`
      })
      cluster.on("ready", () => settleWaiters(cluster, undefined))
      cluster.on("end", () => settleWaiters(cluster, new Error("Connection is closed.")))
      return cluster
    }

    const toError = (command: string, error: unknown, index?: number): ValkeyError => {
      if (error instanceof ValkeyError) return error
      const message = errorMessage(error)
      if (isReplyError(error)) {
        // ioredis attaches the failed command with its arguments: never keep those of AUTH / HELLO (the password).
        const failed = (error as { command?: { name?: unknown } }).command?.name
        const cause = failed === "auth" || failed === "hello" ? undefined : error
        return new ValkeyError({ command, reason: replyReason(message), message, index, cause })
      }
      const detail =
        lastConnectionError !== undefined && !message.includes(lastConnectionError)
          ? `${message} (last connection error: ${lastConnectionError})`
          : message
      return new ValkeyError({ command, reason: "Connection", message: detail, index, cause: error })
    }

    const main = yield* Effect.acquireRelease(
      Effect.sync(() => connect({})),
      (redis) => Effect.promise(() => close(redis))
    )

    // Blocking connections: one per concurrent XREAD BLOCK, a few kept idle for reuse (in cluster mode, each is
    // a cluster client of its own, connecting to the nodes its reads go to).
    const idle: Array<Client> = []
    const blocking = new Set<Client>()
    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        idle.length = 0
        const all = Array.from(blocking)
        blocking.clear()
        return Promise.all(all.map(close))
      })
    )
    const takeBlocking = (): Client => {
      const reused = idle.pop()
      if (reused !== undefined) return reused
      const redis = connect({
        enableAutoPipelining: false,
        connectionName: "tessera-xread",
        // A blocked read waits longer than any command timeout by design; its own guard follows.
        commandTimeout: undefined,
        // Client-side guard: a BLOCK n read fails if no reply came after n + 1 s (a dead socket).
        blockingTimeout: BLOCK_CHUNK_MS + 5000,
        blockingTimeoutGrace: 1000
      })
      blocking.add(redis)
      return redis
    }
    const giveBack = (redis: Client): void => {
      if (!closed && idle.length < MAX_IDLE_BLOCKING && redis.status === "ready") idle.push(redis)
      else discard(redis)
    }
    const discard = (redis: Client): void => {
      blocking.delete(redis)
      redis.disconnect()
    }

    const send = (target: Client, command: Command, name: string, args: Array<Arg>): Promise<unknown> =>
      isBufferReply(command._tag) ? callBuffer(target, name, args) : target.call(name, args)
    const queue = (target: ChainableCommander, command: Command, name: string, args: Array<Arg>): void => {
      if (isBufferReply(command._tag)) callBuffer(target, name, args)
      else target.call(name, args)
    }

    /**
     * Cluster mode: the command's pieces, one per slot. A multi-key command (MGET, DEL, EXISTS) whose keys
     * live in several slots is split; every other command has one key, hence one slot.
     */
    const partsOf = (command: Command): Array<Part> => {
      const keys = multiKeys(command)
      if (keys !== undefined && keys.length > 1) {
        const prefixed = keys.map(k)
        const groups = groupBySlot(prefixed)
        if (groups.length > 1) {
          const name = command._tag === "mgetBuffer" ? "mget" : command._tag
          return groups.map(({ slot, positions }) => ({
            slot,
            name,
            args: positions.map((i) => prefixed[i]),
            positions
          }))
        }
      }
      const [name, args] = encode(command, k)
      // A command without keys (DEL with none: an error reply) may go to any node.
      const key = keys === undefined ? (command as { readonly key: string }).key : keys[0]
      return [{ slot: key === undefined ? 0 : keySlot(k(key)), name, args, positions: undefined }]
    }

    const autoPipelining = options.autoPipelining ?? true
    const redisCommandOf = (command: Command): RedisCommand => {
      const [name, args] = encode(command, k)
      return new RedisCommand(name, args, { replyEncoding: isBufferReply(command._tag) ? null : "utf8" })
    }

    /** Writes one command at once (an encoding error throws, which `tryPromise` turns into a failure). */
    const writeOne = (command: Command): Promise<unknown> => {
      const sent = redisCommandOf(command)
      writeJoined(main as Redis, [sent])
      return sent.promise
    }

    // Single node: with auto-pipelining (the default) a command joins this turn's pipelines and leaves in their
    // write; without it, it is written at once, on its own, unless pipelines of this turn wait to leave: then it
    // waits behind them. Either way commands leave in the order they were issued, and none goes through an ioredis
    // `Pipeline`.
    const execSingle = <C extends Command>(command: C): Effect.Effect<ResultOf<C>, ValkeyError> =>
      Effect.tryPromise({
        try: () =>
          autoPipelining || pendingPipelines.length > 0
            ? new Promise<ResultOf<C>>((resolve, reject) =>
                enqueue({
                  commands: [command],
                  resolve: (results) => resolve(results[0] as ResultOf<C>),
                  reject,
                  single: true
                })
              )
            : writeOne(command).then((raw) => decode(command._tag, raw) as ResultOf<C>),
        catch: (error) => toError(commandName(command._tag), error)
      })

    const execCluster = <C extends Command>(command: C): Effect.Effect<ResultOf<C>, ValkeyError> =>
      Effect.tryPromise({
        try: () =>
          whenReady(main, () => {
            const parts = partsOf(command)
            if (parts.length === 1) {
              return send(main, command, parts[0].name, parts[0].args).then(
                (raw) => decode(command._tag, raw) as ResultOf<C>
              )
            }
            // Split by slot: the pieces run concurrently and are put back together in the caller's key order.
            return Promise.all(parts.map((part) => send(main, command, part.name, part.args))).then(
              (raws) => decode(command._tag, mergeParts(command, parts, raws)) as ResultOf<C>
            )
          }),
        catch: (error) => toError(commandName(command._tag), error)
      })

    /** Resolves or rejects one caller's pipeline from the replies of its commands. */
    const settle = (pending: PendingPipeline, reply: (i: number) => readonly [error: unknown, raw: unknown]) => {
      const { commands } = pending
      const results: Array<unknown> = new Array(commands.length)
      let failure: ValkeyError | undefined
      for (let i = 0; i < commands.length; i++) {
        const [error, raw] = reply(i)
        if (error) failure ??= toError(commandName(commands[i]._tag), error, pending.single === true ? undefined : i)
        else if (failure === undefined) {
          try {
            results[i] = decode(commands[i]._tag, raw)
          } catch (cause) {
            failure = toError(commandName(commands[i]._tag), cause, pending.single === true ? undefined : i)
          }
        }
      }
      if (failure !== undefined) pending.reject(failure)
      else pending.resolve(results)
    }

    // Pipelines (and, with auto-pipelining, single commands) issued in the same turn of the event loop leave
    // together: one socket write (`writeJoined`). Each caller still gets its own commands' replies in order (and
    // its own failure); commands of one pipeline stay contiguous and in order on the connection.
    const flushSingle = (queued: Array<PendingPipeline>): void => {
      const out: Array<RedisCommand> = []
      for (const pending of queued) {
        // A command that cannot be encoded fails its own pipeline only (nothing of it is sent).
        let sent: Array<RedisCommand>
        try {
          sent = pending.commands.map(redisCommandOf)
        } catch (error) {
          pending.reject(error)
          continue
        }
        const replies: Array<readonly [error: unknown, raw: unknown]> = new Array(sent.length)
        let left = sent.length
        for (let i = 0; i < sent.length; i++) {
          sent[i].promise.then(
            (raw) => {
              replies[i] = [null, raw]
              if (--left === 0) settle(pending, (j) => replies[j])
            },
            (error: unknown) => {
              replies[i] = [error, undefined]
              if (--left === 0) settle(pending, (j) => replies[j])
            }
          )
          out.push(sent[i])
        }
      }
      if (out.length > 0) writeJoined(main as Redis, out)
    }

    // Cluster mode: one ioredis pipeline per slot (a cluster pipeline must stay on one node, and a slot is what
    // cannot move between nodes in the middle of it), all sent concurrently. In each slot's pipeline a caller's
    // commands keep their order, so commands on one key still run in the order given.
    const flushCluster = (queued: Array<PendingPipeline>): void => {
      const batch: Array<{
        readonly pending: PendingPipeline
        readonly parts: Array<Array<Part>>
        readonly replies: Array<Array<readonly [unknown, unknown]>>
        failure: unknown
      }> = []
      const bySlot = new Map<
        number,
        Array<{ readonly item: number; readonly command: number; readonly part: number }>
      >()
      for (const pending of queued) {
        let parts: Array<Array<Part>>
        try {
          parts = pending.commands.map(partsOf)
        } catch (error) {
          pending.reject(error)
          continue
        }
        const item = batch.length
        batch.push({ pending, parts, replies: parts.map((p) => new Array(p.length)), failure: undefined })
        for (let c = 0; c < parts.length; c++) {
          for (let j = 0; j < parts[c].length; j++) {
            const slot = parts[c][j].slot
            const entries = bySlot.get(slot)
            if (entries === undefined) bySlot.set(slot, [{ item, command: c, part: j }])
            else entries.push({ item, command: c, part: j })
          }
        }
      }
      if (batch.length === 0) return
      const runSlot = (
        entries: Array<{ readonly item: number; readonly command: number; readonly part: number }>
      ): Promise<void> => {
        const slotPipeline = main.pipeline()
        for (const { item, command, part } of entries) {
          const { name, args } = batch[item].parts[command][part]
          queue(slotPipeline, batch[item].pending.commands[command], name, args)
        }
        const failAll = (error: unknown) => {
          for (const { item } of entries) batch[item].failure ??= error
        }
        return slotPipeline.exec().then((replies) => {
          if (replies === null) return failAll(new Error("the pipeline was discarded"))
          for (let i = 0; i < entries.length; i++) {
            batch[entries[i].item].replies[entries[i].command][entries[i].part] = replies[i]
          }
        }, failAll)
      }
      const finish = () => {
        for (const { pending, parts, replies, failure } of batch) {
          if (failure !== undefined) {
            pending.reject(failure)
            continue
          }
          settle(pending, (i) => {
            if (parts[i].length === 1) return replies[i][0]
            const failed = replies[i].find(([error]) => error)
            if (failed !== undefined) return failed
            return [
              null,
              mergeParts(
                pending.commands[i],
                parts[i],
                replies[i].map(([, raw]) => raw)
              )
            ]
          })
        }
      }
      whenReady(main, () => Promise.all(Array.from(bySlot.values(), runSlot))).then(finish, (error: unknown) => {
        for (const { pending } of batch) pending.reject(error)
      })
    }

    let pendingPipelines: Array<PendingPipeline> = []
    const flushPipelines = (): void => {
      const queued = pendingPipelines
      pendingPipelines = []
      if (clustered) flushCluster(queued)
      else flushSingle(queued)
    }

    const enqueue = (pending: PendingPipeline): void => {
      if (pendingPipelines.length === 0) setImmediate(flushPipelines)
      pendingPipelines.push(pending)
    }

    /**
     * Single node: writes a command outside the `Command` set (XREAD) at once, after sending this turn's queued
     * pipelines, so it too leaves in the order issued.
     */
    const writeNow = (name: string, args: Array<Arg>): Promise<unknown> => {
      if (pendingPipelines.length > 0) flushPipelines()
      const sent = new RedisCommand(name, args, { replyEncoding: "utf8" })
      writeJoined(main as Redis, [sent])
      return sent.promise
    }

    const pipeline = (commands: ReadonlyArray<Command>): Effect.Effect<Array<unknown>, ValkeyError> => {
      if (commands.length === 0) return Effect.succeed([])
      return Effect.tryPromise({
        try: () => new Promise<Array<unknown>>((resolve, reject) => enqueue({ commands, resolve, reject })),
        catch: (error) => toError("PIPELINE", error)
      })
    }

    const decodeRead = (raw: Raw): Array<StreamRead> => {
      const list = raw as Array<[string, Raw]> | null
      if (list === null) return []
      const out: Array<StreamRead> = new Array(list.length)
      for (let i = 0; i < list.length; i++) out[i] = { key: unprefix(list[i][0]), entries: decodeEntries(list[i][1]) }
      return out
    }

    const readArgs = (streams: XReadStreams, count: number | undefined, block: number | undefined): Array<Arg> => {
      const args: Array<Arg> = []
      if (count !== undefined) args.push("COUNT", count)
      if (block !== undefined) args.push("BLOCK", block)
      args.push("STREAMS")
      for (const [key] of streams) args.push(k(key))
      for (const [, id] of streams) args.push(id)
      return args
    }

    const blockingRead = (
      streams: XReadStreams,
      count: number | undefined,
      block: number
    ): Effect.Effect<Array<StreamRead>, ValkeyError> =>
      Effect.callback<Array<StreamRead>, ValkeyError>((resume) => {
        if (closed) {
          resume(Effect.fail(toError("XREAD", new Error("Connection is closed."))))
          return
        }
        const redis = takeBlocking()
        let settled = false
        whenReady(redis, () => redis.call("xread", readArgs(streams, count, block))).then(
          (raw) => {
            settled = true
            giveBack(redis)
            try {
              resume(Effect.succeed(decodeRead(raw)))
            } catch (error) {
              resume(Effect.fail(toError("XREAD", error)))
            }
          },
          (error: unknown) => {
            settled = true
            if (isReplyError(error)) giveBack(redis)
            else discard(redis)
            resume(Effect.fail(toError("XREAD", error)))
          }
        )
        // Interrupted while the server still blocks: that connection is busy until the timeout, so drop it.
        return Effect.sync(() => {
          if (!settled) discard(redis)
        })
      })

    /** `$` resolved to each stream's current last id, so that repeated BLOCK reads miss nothing. */
    const resolveLast = (streams: XReadStreams): Effect.Effect<XReadStreams, ValkeyError> => {
      const dollars = streams.filter(([, id]) => id === "$")
      if (dollars.length === 0) return Effect.succeed(streams)
      return Effect.map(pipeline(dollars.map(([key]) => Cmd.xrevrange(key, "+", "-", 1))), (lasts) => {
        let j = 0
        return streams.map(([key, id]): readonly [string, string] => {
          if (id !== "$") return [key, id]
          const last = (lasts[j++] as Array<StreamEntry>)[0]
          return [key, last === undefined ? "0-0" : last.id]
        })
      })
    }

    /** XREAD of streams that share a node (all of them on a single node; one slot's in cluster mode). */
    const readSlot = (
      streams: XReadStreams,
      count: number | undefined,
      block: number | undefined
    ): Effect.Effect<Array<StreamRead>, ValkeyError> => {
      if (block === undefined) {
        return Effect.tryPromise({
          try: () =>
            (clustered
              ? whenReady(main, () => main.call("xread", readArgs(streams, count, undefined)))
              : writeNow("xread", readArgs(streams, count, undefined))
            ).then(decodeRead),
          catch: (error) => toError("XREAD", error)
        })
      }
      if (block > 0 && block <= BLOCK_CHUNK_MS) return blockingRead(streams, count, block)
      return Effect.flatMap(resolveLast(streams), (resolved) => {
        const deadline = block === 0 ? Infinity : Date.now() + block
        const loop: Effect.Effect<Array<StreamRead>, ValkeyError> = Effect.suspend(() => {
          const left = deadline - Date.now()
          if (left <= 0) return Effect.succeed([])
          return Effect.flatMap(blockingRead(resolved, count, Math.min(BLOCK_CHUNK_MS, Math.ceil(left))), (found) =>
            found.length > 0 ? Effect.succeed(found) : loop
          )
        })
        return loop
      })
    }

    const xread = (streams: XReadStreams, options?: XReadOptions): Effect.Effect<Array<StreamRead>, ValkeyError> => {
      const count = options?.count
      const block = options?.block
      const invalid = checkBlock(block)
      if (invalid !== undefined) return Effect.fail(invalid)
      const slots = clustered ? groupBySlot(streams.map(([key]) => k(key))) : []
      if (slots.length <= 1) return readSlot(streams, count, block)
      // Cluster mode, streams in several slots: one read per slot. Without BLOCK they run concurrently and the
      // answer lists the streams in the caller's order; with BLOCK the first read that finds entries answers
      // (the others are interrupted, their connections dropped) and a timeout answers empty.
      const perSlot = slots.map(({ positions }) => positions.map((i) => streams[i]))
      if (block === undefined) {
        return Effect.map(
          Effect.all(
            perSlot.map((group) => readSlot(group, count, undefined)),
            { concurrency: "unbounded" }
          ),
          (reads) => inStreamOrder(streams, reads.flat())
        )
      }
      // The last read to time out empty answers empty: no read is cut short (which would cost its connection).
      return Effect.suspend(() => {
        let empty = 0
        return Effect.raceAllFirst(
          perSlot.map((group) =>
            Effect.flatMap(readSlot(group, count, block), (found) =>
              found.length > 0 || ++empty === perSlot.length ? Effect.succeed(found) : Effect.never
            )
          )
        )
      })
    }

    /** Runs a script by its digest, loading it with EVAL when the server does not know it (NOSCRIPT). */
    const runScript = (script: string, sha: string, key: string, args: Array<Arg>): Promise<unknown> => {
      const call = (name: string, first: string) => {
        const words: Array<Arg> = [first, 1, k(key), ...args]
        return clustered ? whenReady(main, () => main.call(name, words)) : writeNow(name, words)
      }
      return call("evalsha", sha).catch((error: unknown) =>
        errorMessage(error).startsWith("NOSCRIPT") ? call("eval", script) : Promise.reject(error)
      )
    }
    const fenced = (fence: Fence, commands: ReadonlyArray<Command>) =>
      Effect.tryPromise({
        try: () => {
          const args: Array<Arg> = [String(fence.epoch), commands.length]
          for (const command of commands) {
            const [name, words] = encode(command, k)
            args.push(words.length + 1, name, ...words)
          }
          return runScript(FENCED_SCRIPT, FENCED_SHA, fence.key, args).then((raw) =>
            raw === null
              ? undefined
              : (raw as Array<unknown>).map((reply, i) => decode(commands[i]._tag, reply === undefined ? null : reply))
          )
        },
        catch: (error) => toError("FENCED", error)
      })
    const claimFence = (key: string, epoch: number) =>
      Effect.tryPromise({
        try: () => runScript(CLAIM_FENCE_SCRIPT, CLAIM_FENCE_SHA, key, [String(epoch)]).then((raw) => raw === 1),
        catch: (error) => toError("CLAIMFENCE", error)
      })

    const escapedPrefix = prefix.replace(/[*?[\]\\]/g, "\\$&")
    const keys = (pattern: string): Effect.Effect<Array<string>, ValkeyError> =>
      Effect.tryPromise({
        try: () =>
          whenReady(main, async () => {
            const found = new Set<string>()
            // Cluster mode: every primary holds its own slots' keys.
            const nodes = main instanceof Cluster ? main.nodes("master") : [main]
            for (const node of nodes) {
              let cursor = "0"
              do {
                const [next, batch] = (await node.call("scan", [
                  cursor,
                  "MATCH",
                  escapedPrefix + pattern,
                  "COUNT",
                  1000
                ])) as [string, Array<string>]
                for (const key of batch) found.add(unprefix(key))
                cursor = next
              } while (cursor !== "0")
            }
            return Array.from(found)
          }),
        catch: (error) => toError("SCAN", error)
      })

    return Valkey.of(
      fromPrimitives({ exec: clustered ? execCluster : execSingle, pipeline, fenced, claimFence, xread, keys })
    )
  })

/** QUIT when connected (bounded to 2 s), otherwise just disconnect; never rejects. */
const close = async (redis: Client): Promise<void> => {
  if (redis.status === "ready") {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      redis.quit().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 2000)
      })
    ])
    clearTimeout(timer)
  }
  redis.disconnect()
}

/**
 * Valkey over ioredis. Connects on first use; a server that cannot be reached makes commands fail with a
 * `Connection` error (bounded by `maxRetriesPerRequest`), not hang.
 *
 * @since 0.1.0
 */
export const layerIoredis = (options: IoredisOptions): Layer.Layer<Valkey, ValkeyError> =>
  Layer.effect(Valkey, makeIoredis(options))

/**
 * `layerIoredis` when a URL is given (`REDIS_URL`), otherwise `layerMemory`: the choice the composition roots
 * make.
 *
 * @since 0.1.0
 */
export const layer = (
  options: Omit<IoredisOptions, "url"> & { readonly url: string | undefined }
): Layer.Layer<Valkey, ValkeyError> =>
  options.url === undefined || options.url === "" ? layerMemory : layerIoredis({ ...options, url: options.url })

/** What reads through `ValkeyReplica` saw: where they went, and the replica's last measured lag. */
export interface ReplicaReadStats {
  /** Reads answered by the replica. */
  readonly replicaReads: number
  /** Reads sent to the primary: no replica, a stale one, or after a replica error. */
  readonly primaryReads: number
  /** Replica reads that failed and were sent again to the primary. */
  readonly fallbacks: number
  /** Lag measured at the last check (milliseconds), undefined before the first or after a failed one. */
  readonly lagMillis: number | undefined
  /** Whether reads go to the replica now. */
  readonly fresh: boolean
}

/**
 * Reads that may be served by a Valkey replica in this node's zone. Only reads that tolerate a bounded staleness
 * belong here: the replica serves them while its measured lag is at most `maxLag`, checked every `checkEvery`, so
 * a replica read misses at most the primary's last `maxLag + checkEvery` of writes; otherwise, and when a replica
 * read fails, the primary answers.
 */
export interface ValkeyReplicaService {
  /** Runs `read` on the replica while it is fresh (falling back to the primary on an error), else on the primary. */
  readonly read: <A>(read: (valkey: ValkeyService) => Effect.Effect<A, ValkeyError>) => Effect.Effect<A, ValkeyError>
  readonly stats: () => ReplicaReadStats
}

export class ValkeyReplica extends Context.Service<ValkeyReplica, ValkeyReplicaService>()(
  "tessera/runtime/ValkeyReplica"
) {}

export interface ReplicaOptions {
  readonly primary: ValkeyService
  readonly replica: ValkeyService
  /** A key only this node writes (on the primary), read back from the replica to measure its lag. */
  readonly clockKey: string
  /** Largest lag at which the replica still serves reads (milliseconds). */
  readonly maxLagMillis: number
  /** How often the lag is measured (milliseconds). */
  readonly checkMillis: number
}

/**
 * Replica reads with a measured lag: every `checkMillis` this node writes its clock to `clockKey` on the primary
 * and reads the key back from the replica; the lag is now minus the clock the replica holds (replication is
 * asynchronous, so that clock is the newest write it is known to have). The check runs in a fiber of the scope.
 */
export const makeReplica = (options: ReplicaOptions): Effect.Effect<ValkeyReplicaService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { primary, replica } = options
    let fresh = false
    let lagMillis: number | undefined
    let replicaReads = 0
    let primaryReads = 0
    let fallbacks = 0
    const check = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      yield* primary.set(options.clockKey, String(now), { px: Math.max(60_000, 10 * options.checkMillis) })
      const seen = yield* replica.get(options.clockKey)
      const at = seen === null ? Number.NaN : Number(seen)
      lagMillis = Number.isFinite(at) ? Math.max(0, (yield* Clock.currentTimeMillis) - at) : undefined
      fresh = lagMillis !== undefined && lagMillis <= options.maxLagMillis
    }).pipe(
      Effect.catch(() =>
        Effect.sync(() => {
          lagMillis = undefined
          fresh = false
        })
      )
    )
    yield* check
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(options.checkMillis), check)))
    return {
      read: <A>(read: (valkey: ValkeyService) => Effect.Effect<A, ValkeyError>) => {
        if (!fresh) {
          primaryReads++
          return read(primary)
        }
        return Effect.catch(
          Effect.map(read(replica), (a) => {
            replicaReads++
            return a
          }),
          (error) =>
            error.reason === "Connection" || error.reason === "Reply"
              ? Effect.suspend(() => {
                  // A failing replica serves nothing until a check finds it fresh again.
                  fresh = false
                  fallbacks++
                  primaryReads++
                  return read(primary)
                })
              : Effect.fail(error)
        )
      },
      stats: () => ({ replicaReads, primaryReads, fallbacks, lagMillis, fresh })
    }
  })

/** No replica: every read goes to the primary (`Valkey`). */
export const layerReplicaNone: Layer.Layer<ValkeyReplica, never, Valkey> = Layer.effect(
  ValkeyReplica,
  Effect.gen(function* () {
    const primary = yield* Valkey
    let primaryReads = 0
    return {
      read: <A>(read: (valkey: ValkeyService) => Effect.Effect<A, ValkeyError>) => {
        primaryReads++
        return read(primary)
      },
      stats: () => ({ replicaReads: 0, primaryReads, fallbacks: 0, lagMillis: undefined, fresh: false })
    }
  })
)

/**
 * Reads from the replica at `options.url` (`replicaReads`) while it is fresh, else from the primary (`Valkey`).
 * `none` for the URL: `layerReplicaNone`.
 */
export const layerReplica = (
  options: Omit<IoredisOptions, "url" | "replicaReads"> & {
    readonly url: string | undefined
    readonly clockKey: string
    readonly maxLagMillis: number
    readonly checkMillis: number
  }
): Layer.Layer<ValkeyReplica, ValkeyError, Valkey> => {
  const { url, clockKey, maxLagMillis, checkMillis, ...connection } = options
  if (url === undefined || url === "") return layerReplicaNone
  return Layer.effect(
    ValkeyReplica,
    Effect.gen(function* () {
      const primary = yield* Valkey
      const replica = yield* makeIoredis({ ...connection, url, replicaReads: true })
      return yield* makeReplica({ primary, replica, clockKey, maxLagMillis, checkMillis })
    })
  )
}
