/**
 * An in-memory keyspace with the semantics of the Valkey subset in `valkeyCommand.ts`: lazy TTL expiry plus
 * `sweep()`, WRONGTYPE errors, empty hashes / sets removed, stream ids `ms-seq` monotonic, MAXLEN trimming and
 * waiters woken by XADD. Synchronous and single-threaded; the Effect layer wraps it. No Effect imports.
 */
import { Buffer } from "node:buffer"
import {
  assignField,
  type Command,
  type CommandResults,
  type SetOptions,
  type StreamEntry,
  type StreamRead,
  type Value,
  type XAddOptions
} from "./valkeyCommand.ts"

/** A command error, with the message the server would give. */
export class ReplyError extends Error {
  override readonly name = "ReplyError"
}

export const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
const NOT_INTEGER = "ERR value is not an integer or out of range"
const INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
const arityError = (name: string) => new ReplyError(`ERR wrong number of arguments for '${name}' command`)

/** A stored value: strings and hash values keep the bytes or the string they were written with. */
type Stored = string | Buffer

interface StringEntry {
  readonly type: "string"
  value: Stored
  expireAt: number
}
interface HashEntry {
  readonly type: "hash"
  readonly fields: Map<string, Stored>
  expireAt: number
}
interface SetEntry {
  readonly type: "set"
  readonly members: Set<string>
  expireAt: number
}
/** Entries live in parallel arrays from `head` on; trimming moves `head` and compacts now and then. */
interface StreamStore {
  readonly type: "stream"
  ms: Array<number>
  seq: Array<number>
  entries: Array<StreamEntry>
  head: number
  lastMs: number
  lastSeq: number
  expireAt: number
}
type Entry = StringEntry | HashEntry | SetEntry | StreamStore
type EntryType = Entry["type"]
type EntryOf<T extends EntryType> = Extract<Entry, { readonly type: T }>

const toStored = (value: Value): Stored => (typeof value === "string" ? value : Buffer.from(value))
const storedToString = (value: Stored): string => (typeof value === "string" ? value : value.toString("utf8"))
// A copy, as a server reply would be: a caller mutating it must not change the store.
const storedToBuffer = (value: Stored): Buffer =>
  typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value)

/** A parsed stream id; `Infinity` stands for the largest id (`+`). */
interface Id {
  ms: number
  seq: number
}
const compareId = (ms1: number, seq1: number, ms2: number, seq2: number): number =>
  ms1 !== ms2 ? (ms1 < ms2 ? -1 : 1) : seq1 === seq2 ? 0 : seq1 < seq2 ? -1 : 1

const DIGITS = /^\d+$/
const parseId = (text: string, missingSeq: number): Id => {
  const dash = text.indexOf("-")
  const msText = dash === -1 ? text : text.slice(0, dash)
  const seqText = dash === -1 ? undefined : text.slice(dash + 1)
  if (!DIGITS.test(msText) || (seqText !== undefined && !DIGITS.test(seqText))) throw new ReplyError(INVALID_ID)
  return { ms: Number(msText), seq: seqText === undefined ? missingSeq : Number(seqText) }
}

/** Start of a range: `-`, `(id` (exclusive), `ms-seq`, `ms` (= `ms-0`). */
const parseRangeStart = (text: string): Id => {
  if (text === "-") return { ms: 0, seq: 0 }
  if (text === "+") return { ms: Infinity, seq: Infinity }
  if (text.startsWith("(")) {
    const id = parseId(text.slice(1), 0)
    return id.seq === Infinity ? { ms: id.ms + 1, seq: 0 } : { ms: id.ms, seq: id.seq + 1 }
  }
  return parseId(text, 0)
}

/** End of a range: `+`, `(id` (exclusive), `ms-seq`, `ms` (= the last id of that millisecond). */
const parseRangeEnd = (text: string): Id => {
  if (text === "+") return { ms: Infinity, seq: Infinity }
  if (text === "-") return { ms: 0, seq: 0 }
  if (text.startsWith("(")) {
    const id = parseId(text.slice(1), Infinity)
    if (id.seq > 0) return { ms: id.ms, seq: id.seq - 1 }
    return id.ms > 0 ? { ms: id.ms - 1, seq: Infinity } : { ms: -1, seq: 0 }
  }
  return parseId(text, Infinity)
}

/** Redis glob (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) as an anchored RegExp. */
export const globToRegExp = (pattern: string): RegExp => {
  let source = "^"
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === "*") source += "[\\s\\S]*"
    else if (c === "?") source += "[\\s\\S]"
    else if (c === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern[++i])
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 2)
      if (close === -1) {
        source += "\\["
        continue
      }
      let body = pattern.slice(i + 1, close)
      const negate = body.startsWith("^")
      if (negate) body = body.slice(1)
      let set = ""
      for (let j = 0; j < body.length; j++) {
        const b = body[j]
        if (b === "\\" && j + 1 < body.length) set += escapeRegExp(body[++j])
        else if (b === "-" && j > 0 && j + 1 < body.length) set += "-"
        else set += escapeRegExp(b)
      }
      source += negate ? `[^${set}]` : `[${set}]`
      i = close
    } else source += escapeRegExp(c)
  }
  return new RegExp(source + "$")
}
const escapeRegExp = (c: string): string => (/[\\^$.*+?()[\]{}|/-]/.test(c) ? "\\" + c : c)

type Waiter = () => void

export class MemoryStore {
  private readonly data = new Map<string, Entry>()
  /** Keys that have (or had) a TTL, visited by `sweep`. */
  private readonly expiring = new Set<string>()
  private readonly waiters = new Map<string, Set<Waiter>>()
  private readonly now: () => number

  constructor(now: () => number) {
    this.now = now
  }

  /** Deletes every expired key; cheap enough to run every second (it visits only keys that had a TTL). */
  sweep(): void {
    const now = this.now()
    for (const key of this.expiring) {
      const entry = this.data.get(key)
      if (entry === undefined || entry.expireAt === 0) this.expiring.delete(key)
      else if (entry.expireAt <= now) this.remove(key)
    }
  }

  /** The number of live and not yet swept keys (for tests of the sweep). */
  get size(): number {
    return this.data.size
  }

  exec<C extends Command>(command: C): CommandResults[C["_tag"]]
  exec(c: Command): unknown {
    switch (c._tag) {
      case "get":
        return this.get(c.key, storedToString)
      case "getBuffer":
        return this.get(c.key, storedToBuffer)
      case "set":
        return this.set(c.key, c.value, c.options)
      case "mget":
        return this.mget(c.keys, storedToString)
      case "mgetBuffer":
        return this.mget(c.keys, storedToBuffer)
      case "del":
        return this.del(c.keys)
      case "exists":
        return this.exists(c.keys)
      case "expire":
        if (!Number.isInteger(c.seconds)) throw new ReplyError(NOT_INTEGER)
        return this.pexpire(c.key, c.seconds * 1000)
      case "pexpire":
        return this.pexpire(c.key, c.millis)
      case "pttl":
        return this.pttl(c.key)
      case "incr":
        return this.incrby(c.key, 1)
      case "incrby":
        return this.incrby(c.key, c.by)
      case "hset":
        return this.hset(c.key, c.fields)
      case "hget":
        return this.hget(c.key, c.field, storedToString)
      case "hgetBuffer":
        return this.hget(c.key, c.field, storedToBuffer)
      case "hmget":
        return this.hmget(c.key, c.fields, storedToString)
      case "hmgetBuffer":
        return this.hmget(c.key, c.fields, storedToBuffer)
      case "hgetall":
        return this.hgetall(c.key, storedToString)
      case "hgetallBuffer":
        return this.hgetall(c.key, storedToBuffer)
      case "hdel":
        return this.hdel(c.key, c.fields)
      case "hlen":
        return this.lookup(c.key, "hash")?.fields.size ?? 0
      case "sadd":
        return this.sadd(c.key, c.members)
      case "srem":
        return this.srem(c.key, c.members)
      case "smembers": {
        const entry = this.lookup(c.key, "set")
        return entry === undefined ? [] : Array.from(entry.members)
      }
      case "sismember":
        return this.lookup(c.key, "set")?.members.has(c.member) ?? false
      case "scard":
        return this.lookup(c.key, "set")?.members.size ?? 0
      case "xadd":
        return this.xadd(c.key, c.fields, c.options)
      case "xrange":
        return this.xrange(c.key, c.start, c.end, c.count, false)
      case "xrevrange":
        return this.xrange(c.key, c.start, c.end, c.count, true)
      case "xlen": {
        const entry = this.lookup(c.key, "stream")
        return entry === undefined ? 0 : entry.entries.length - entry.head
      }
    }
  }

  /** Keys matching a Redis glob pattern, in no particular order. */
  keys(pattern: string): Array<string> {
    const regexp = globToRegExp(pattern)
    const out: Array<string> = []
    for (const key of this.data.keys()) if (regexp.test(key) && this.live(key) !== undefined) out.push(key)
    return out
  }

  /**
   * Resolves XREAD ids once (`$` is the stream's last id now) so that a blocked read keeps its position.
   * Throws WRONGTYPE for a key holding something else.
   */
  resolveReadIds(streams: ReadonlyArray<readonly [key: string, id: string]>): Array<Id> {
    const out: Array<Id> = new Array(streams.length)
    for (let i = 0; i < streams.length; i++) {
      const [key, id] = streams[i]
      if (id === "$") {
        const entry = this.lookup(key, "stream")
        out[i] = entry === undefined ? { ms: 0, seq: 0 } : { ms: entry.lastMs, seq: entry.lastSeq }
      } else {
        this.lookup(key, "stream")
        out[i] = parseId(id, 0)
      }
    }
    return out
  }

  /** Entries after each resolved id; only streams with entries appear. */
  read(
    streams: ReadonlyArray<readonly [key: string, id: string]>,
    after: ReadonlyArray<Id>,
    count: number | undefined
  ): Array<StreamRead> {
    const out: Array<StreamRead> = []
    for (let i = 0; i < streams.length; i++) {
      const key = streams[i][0]
      const entry = this.lookup(key, "stream")
      if (entry === undefined) continue
      const from = this.lowerBound(entry, after[i].ms, after[i].seq, true)
      if (from >= entry.entries.length) continue
      const to = count !== undefined && count > 0 ? Math.min(entry.entries.length, from + count) : entry.entries.length
      out.push({ key, entries: entry.entries.slice(from, to) })
    }
    return out
  }

  /** Calls `waiter` after the next XADD to any of `keys`; returns the function that unregisters it. */
  onAdd(keys: ReadonlyArray<string>, waiter: Waiter): () => void {
    for (const key of keys) {
      let set = this.waiters.get(key)
      if (set === undefined) this.waiters.set(key, (set = new Set()))
      set.add(waiter)
    }
    return () => {
      for (const key of keys) {
        const set = this.waiters.get(key)
        if (set?.delete(waiter) && set.size === 0) this.waiters.delete(key)
      }
    }
  }

  // --- internals ---

  private live(key: string): Entry | undefined {
    const entry = this.data.get(key)
    if (entry === undefined) return undefined
    if (entry.expireAt !== 0 && entry.expireAt <= this.now()) {
      this.remove(key)
      return undefined
    }
    return entry
  }

  private lookup<T extends EntryType>(key: string, type: T): EntryOf<T> | undefined {
    const entry = this.live(key)
    if (entry === undefined) return undefined
    if (entry.type !== type) throw new ReplyError(WRONGTYPE)
    return entry as EntryOf<T>
  }

  private remove(key: string): void {
    this.data.delete(key)
    this.expiring.delete(key)
  }

  private get<A>(key: string, decode: (value: Stored) => A): A | null {
    const entry = this.lookup(key, "string")
    return entry === undefined ? null : decode(entry.value)
  }

  private set(key: string, value: Value, options: SetOptions | undefined): boolean {
    if (options !== undefined) {
      if (options.nx || options.xx) {
        const exists = this.live(key) !== undefined
        if ((options.nx && exists) || (options.xx && !exists)) return false
      }
      if (options.px !== undefined) {
        if (!Number.isInteger(options.px) || options.px <= 0) {
          throw new ReplyError("ERR invalid expire time in 'set' command")
        }
        this.data.set(key, { type: "string", value: toStored(value), expireAt: this.now() + options.px })
        this.expiring.add(key)
        return true
      }
    }
    this.data.set(key, { type: "string", value: toStored(value), expireAt: 0 })
    return true
  }

  private mget<A>(keys: ReadonlyArray<string>, decode: (value: Stored) => A): Array<A | null> {
    if (keys.length === 0) throw arityError("mget")
    const out: Array<A | null> = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) {
      const entry = this.live(keys[i])
      out[i] = entry !== undefined && entry.type === "string" ? decode(entry.value) : null
    }
    return out
  }

  private del(keys: ReadonlyArray<string>): number {
    if (keys.length === 0) throw arityError("del")
    let removed = 0
    for (const key of keys) {
      if (this.live(key) !== undefined) {
        this.remove(key)
        removed++
      }
    }
    return removed
  }

  private exists(keys: ReadonlyArray<string>): number {
    if (keys.length === 0) throw arityError("exists")
    let found = 0
    for (const key of keys) if (this.live(key) !== undefined) found++
    return found
  }

  private pexpire(key: string, millis: number): boolean {
    if (!Number.isInteger(millis)) throw new ReplyError(NOT_INTEGER)
    const entry = this.live(key)
    if (entry === undefined) return false
    if (millis <= 0) this.remove(key)
    else {
      entry.expireAt = this.now() + millis
      this.expiring.add(key)
    }
    return true
  }

  private pttl(key: string): number {
    const entry = this.live(key)
    if (entry === undefined) return -2
    return entry.expireAt === 0 ? -1 : Math.max(0, entry.expireAt - this.now())
  }

  private incrby(key: string, by: number): number {
    if (!Number.isSafeInteger(by)) throw new ReplyError(NOT_INTEGER)
    const entry = this.lookup(key, "string")
    if (entry === undefined) {
      this.data.set(key, { type: "string", value: String(by), expireAt: 0 })
      return by
    }
    const text = storedToString(entry.value)
    if (!/^-?\d{1,19}$/.test(text) || (text.length > 1 && /^-?0/.test(text))) throw new ReplyError(NOT_INTEGER)
    const next = Number(text) + by
    if (!Number.isSafeInteger(next)) throw new ReplyError("ERR increment or decrement would overflow")
    entry.value = String(next)
    return next
  }

  private hset(key: string, fields: Readonly<Record<string, Value>>): number {
    const names = Object.keys(fields)
    if (names.length === 0) throw arityError("hset")
    let entry = this.lookup(key, "hash")
    if (entry === undefined) {
      entry = { type: "hash", fields: new Map(), expireAt: 0 }
      this.data.set(key, entry)
    }
    let added = 0
    for (const name of names) {
      if (!entry.fields.has(name)) added++
      entry.fields.set(name, toStored(fields[name]))
    }
    return added
  }

  private hget<A>(key: string, field: string, decode: (value: Stored) => A): A | null {
    const value = this.lookup(key, "hash")?.fields.get(field)
    return value === undefined ? null : decode(value)
  }

  private hmget<A>(key: string, fields: ReadonlyArray<string>, decode: (value: Stored) => A): Array<A | null> {
    if (fields.length === 0) throw arityError("hmget")
    const entry = this.lookup(key, "hash")
    const out: Array<A | null> = new Array(fields.length)
    for (let i = 0; i < fields.length; i++) {
      const value = entry?.fields.get(fields[i])
      out[i] = value === undefined ? null : decode(value)
    }
    return out
  }

  private hgetall<A>(key: string, decode: (value: Stored) => A): Record<string, A> {
    const out: Record<string, A> = {}
    const entry = this.lookup(key, "hash")
    if (entry !== undefined) for (const [field, value] of entry.fields) assignField(out, field, decode(value))
    return out
  }

  private hdel(key: string, fields: ReadonlyArray<string>): number {
    if (fields.length === 0) throw arityError("hdel")
    const entry = this.lookup(key, "hash")
    if (entry === undefined) return 0
    let removed = 0
    for (const field of fields) if (entry.fields.delete(field)) removed++
    if (entry.fields.size === 0) this.remove(key)
    return removed
  }

  private sadd(key: string, members: ReadonlyArray<string>): number {
    if (members.length === 0) throw arityError("sadd")
    let entry = this.lookup(key, "set")
    if (entry === undefined) {
      entry = { type: "set", members: new Set(), expireAt: 0 }
      this.data.set(key, entry)
    }
    const before = entry.members.size
    for (const member of members) entry.members.add(member)
    return entry.members.size - before
  }

  private srem(key: string, members: ReadonlyArray<string>): number {
    if (members.length === 0) throw arityError("srem")
    const entry = this.lookup(key, "set")
    if (entry === undefined) return 0
    let removed = 0
    for (const member of members) if (entry.members.delete(member)) removed++
    if (entry.members.size === 0) this.remove(key)
    return removed
  }

  private xadd(key: string, fields: Readonly<Record<string, Value>>, options: XAddOptions | undefined): string {
    const names = Object.keys(fields)
    if (names.length === 0) throw arityError("xadd")
    const maxLen = options?.maxLen
    if (maxLen !== undefined && (!Number.isInteger(maxLen) || maxLen < 0)) {
      throw new ReplyError("ERR The MAXLEN argument must be >= 0.")
    }
    const existing = this.lookup(key, "stream")
    const lastMs = existing?.lastMs ?? 0
    const lastSeq = existing?.lastSeq ?? 0
    const { ms, seq } = this.nextId(options?.id ?? "*", lastMs, lastSeq)
    let stream = existing
    if (stream === undefined) {
      stream = { type: "stream", ms: [], seq: [], entries: [], head: 0, lastMs: 0, lastSeq: 0, expireAt: 0 }
      this.data.set(key, stream)
    }
    const id = `${ms}-${seq}`
    const stored: Record<string, string> = {}
    for (const name of names) assignField(stored, name, storedToString(toStored(fields[name])))
    stream.ms.push(ms)
    stream.seq.push(seq)
    stream.entries.push(Object.freeze({ id, fields: Object.freeze(stored) }))
    stream.lastMs = ms
    stream.lastSeq = seq
    if (maxLen !== undefined) this.trim(stream, maxLen)
    const waiting = this.waiters.get(key)
    if (waiting !== undefined) for (const waiter of Array.from(waiting)) waiter()
    return id
  }

  private nextId(text: string, lastMs: number, lastSeq: number): Id {
    if (text === "*") {
      const now = this.now()
      return now > lastMs ? { ms: now, seq: 0 } : { ms: lastMs, seq: lastSeq + 1 }
    }
    let id: Id
    if (text.endsWith("-*")) {
      const msText = text.slice(0, -2)
      if (!DIGITS.test(msText)) throw new ReplyError(INVALID_ID)
      const ms = Number(msText)
      id = ms === lastMs ? { ms, seq: lastSeq + 1 } : { ms, seq: ms === 0 ? 1 : 0 }
    } else id = parseId(text, 0)
    if (id.ms === 0 && id.seq === 0) throw new ReplyError("ERR The ID specified in XADD must be greater than 0-0")
    if (compareId(id.ms, id.seq, lastMs, lastSeq) <= 0) {
      throw new ReplyError("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    }
    return id
  }

  private trim(stream: StreamStore, maxLen: number): void {
    const length = stream.entries.length - stream.head
    if (length <= maxLen) return
    stream.head += length - maxLen
    // Compact once the dead prefix dominates, so trimming stays O(1) amortized per add.
    if (stream.head >= 1024 && stream.head * 2 >= stream.entries.length) {
      stream.ms = stream.ms.slice(stream.head)
      stream.seq = stream.seq.slice(stream.head)
      stream.entries = stream.entries.slice(stream.head)
      stream.head = 0
    }
  }

  private xrange(
    key: string,
    startText: string,
    endText: string,
    count: number | undefined,
    reverse: boolean
  ): Array<StreamEntry> {
    const start = parseRangeStart(startText)
    const end = parseRangeEnd(endText)
    const stream = this.lookup(key, "stream")
    if (stream === undefined || compareId(start.ms, start.seq, end.ms, end.seq) > 0) return []
    const from = this.lowerBound(stream, start.ms, start.seq, false)
    const to = this.lowerBound(stream, end.ms, end.seq, true)
    if (from >= to) return []
    if (count === undefined || count <= 0 || count >= to - from) {
      const out = stream.entries.slice(from, to)
      return reverse ? out.reverse() : out
    }
    if (!reverse) return stream.entries.slice(from, from + count)
    return stream.entries.slice(to - count, to).reverse()
  }

  /** The first index (from `head`) whose id is `>= (ms, seq)`, or `> (ms, seq)` when `strict`. */
  private lowerBound(stream: StreamStore, ms: number, seq: number, strict: boolean): number {
    let lo = stream.head
    let hi = stream.entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = compareId(stream.ms[mid], stream.seq[mid], ms, seq)
      if (c < 0 || (strict && c === 0)) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
