/**
 * The Valkey command set Tessera uses, as plain data: one tagged object per command, so a pipeline is an array
 * of these and both implementations (ioredis, memory) interpret the same values. No Effect imports.
 */

/** A value written to Valkey. Strings are stored as their UTF-8 bytes; byte arrays as they are. */
export type Value = string | Uint8Array

/** One stream entry. `fields` is a frozen-by-convention plain object (field name to value). */
export interface StreamEntry {
  readonly id: string
  readonly fields: Readonly<Record<string, string>>
}

/** The entries XREAD returned for one stream (only streams with entries are returned). */
export interface StreamRead {
  readonly key: string
  readonly entries: ReadonlyArray<StreamEntry>
}

export interface SetOptions {
  /** Expire after this many milliseconds (SET ... PX). */
  readonly px?: number | undefined
  /** Only set when the key does not exist (SET ... NX). */
  readonly nx?: boolean | undefined
  /** Only set when the key exists (SET ... XX). */
  readonly xx?: boolean | undefined
}

export interface XAddOptions {
  /** `*` (default) for a generated id, `ms-*` for a generated sequence, or an explicit `ms-seq` / `ms`. */
  readonly id?: string | undefined
  /** Trim the stream to about this many entries (MAXLEN). */
  readonly maxLen?: number | undefined
  /**
   * `true` (default): `MAXLEN ~ n` — the server may keep more than `n` entries (it trims whole nodes), never
   * fewer. The memory implementation trims to exactly `n`. `false`: `MAXLEN n`, exact on both.
   */
  readonly approximate?: boolean | undefined
}

export interface XReadOptions {
  /** Return at most this many entries per stream. */
  readonly count?: number | undefined
  /**
   * Wait up to this many milliseconds for an entry when none is available; `0` waits forever; omitted: do not
   * wait. A timeout returns an empty array.
   */
  readonly block?: number | undefined
}

/** The arguments of each command, by tag. */
export interface CommandArgs {
  readonly get: { readonly key: string }
  readonly getBuffer: { readonly key: string }
  readonly set: { readonly key: string; readonly value: Value; readonly options: SetOptions | undefined }
  readonly mget: { readonly keys: ReadonlyArray<string> }
  readonly mgetBuffer: { readonly keys: ReadonlyArray<string> }
  readonly del: { readonly keys: ReadonlyArray<string> }
  readonly exists: { readonly keys: ReadonlyArray<string> }
  readonly expire: { readonly key: string; readonly seconds: number }
  readonly pexpire: { readonly key: string; readonly millis: number }
  readonly pttl: { readonly key: string }
  readonly incr: { readonly key: string }
  readonly incrby: { readonly key: string; readonly by: number }
  readonly hset: { readonly key: string; readonly fields: Readonly<Record<string, Value>> }
  readonly hget: { readonly key: string; readonly field: string }
  readonly hgetBuffer: { readonly key: string; readonly field: string }
  readonly hmget: { readonly key: string; readonly fields: ReadonlyArray<string> }
  readonly hmgetBuffer: { readonly key: string; readonly fields: ReadonlyArray<string> }
  readonly hgetall: { readonly key: string }
  readonly hgetallBuffer: { readonly key: string }
  readonly hdel: { readonly key: string; readonly fields: ReadonlyArray<string> }
  readonly hlen: { readonly key: string }
  readonly sadd: { readonly key: string; readonly members: ReadonlyArray<string> }
  readonly srem: { readonly key: string; readonly members: ReadonlyArray<string> }
  readonly smembers: { readonly key: string }
  readonly sismember: { readonly key: string; readonly member: string }
  readonly scard: { readonly key: string }
  readonly xadd: {
    readonly key: string
    readonly fields: Readonly<Record<string, Value>>
    readonly options: XAddOptions | undefined
  }
  readonly xrange: {
    readonly key: string
    readonly start: string
    readonly end: string
    readonly count: number | undefined
  }
  readonly xrevrange: {
    readonly key: string
    readonly end: string
    readonly start: string
    readonly count: number | undefined
  }
  readonly xlen: { readonly key: string }
}

/** The decoded result of each command, by tag. */
export interface CommandResults {
  readonly get: string | null
  readonly getBuffer: Buffer | null
  /** `false` when NX / XX prevented the write. */
  readonly set: boolean
  readonly mget: Array<string | null>
  readonly mgetBuffer: Array<Buffer | null>
  readonly del: number
  readonly exists: number
  /** `false` when the key does not exist. */
  readonly expire: boolean
  readonly pexpire: boolean
  /** Milliseconds to live; `-1` without a TTL; `-2` when the key does not exist. */
  readonly pttl: number
  readonly incr: number
  readonly incrby: number
  /** The number of fields that were added (not updated). */
  readonly hset: number
  readonly hget: string | null
  readonly hgetBuffer: Buffer | null
  readonly hmget: Array<string | null>
  readonly hmgetBuffer: Array<Buffer | null>
  readonly hgetall: Record<string, string>
  readonly hgetallBuffer: Record<string, Buffer>
  readonly hdel: number
  readonly hlen: number
  readonly sadd: number
  readonly srem: number
  readonly smembers: Array<string>
  readonly sismember: boolean
  readonly scard: number
  /** The id of the added entry. */
  readonly xadd: string
  readonly xrange: Array<StreamEntry>
  readonly xrevrange: Array<StreamEntry>
  readonly xlen: number
}

export type CommandTag = keyof CommandArgs

/** A command as data; `Command<"get">` is one GET. */
export type Command<K extends CommandTag = CommandTag> = K extends CommandTag
  ? { readonly _tag: K } & CommandArgs[K]
  : never

export type ResultOf<C extends Command> = CommandResults[C["_tag"]]

/** Results of a pipeline, position by position (a tuple for a literal array, an array of the union otherwise). */
export type PipelineResults<Cs extends ReadonlyArray<Command>> = { -readonly [I in keyof Cs]: ResultOf<Cs[I]> }

/** Constructors for pipeline commands: `Cmd.hset(key, { a: "1" })`, `Cmd.get(key)`, ... */
export const Cmd = {
  get: (key: string): Command<"get"> => ({ _tag: "get", key }),
  getBuffer: (key: string): Command<"getBuffer"> => ({ _tag: "getBuffer", key }),
  set: (key: string, value: Value, options?: SetOptions): Command<"set"> => ({ _tag: "set", key, value, options }),
  mget: (...keys: ReadonlyArray<string>): Command<"mget"> => ({ _tag: "mget", keys }),
  mgetBuffer: (...keys: ReadonlyArray<string>): Command<"mgetBuffer"> => ({ _tag: "mgetBuffer", keys }),
  del: (...keys: ReadonlyArray<string>): Command<"del"> => ({ _tag: "del", keys }),
  exists: (...keys: ReadonlyArray<string>): Command<"exists"> => ({ _tag: "exists", keys }),
  expire: (key: string, seconds: number): Command<"expire"> => ({ _tag: "expire", key, seconds }),
  pexpire: (key: string, millis: number): Command<"pexpire"> => ({ _tag: "pexpire", key, millis }),
  pttl: (key: string): Command<"pttl"> => ({ _tag: "pttl", key }),
  incr: (key: string): Command<"incr"> => ({ _tag: "incr", key }),
  incrby: (key: string, by: number): Command<"incrby"> => ({ _tag: "incrby", key, by }),
  hset: (key: string, fields: Readonly<Record<string, Value>>): Command<"hset"> => ({ _tag: "hset", key, fields }),
  hget: (key: string, field: string): Command<"hget"> => ({ _tag: "hget", key, field }),
  hgetBuffer: (key: string, field: string): Command<"hgetBuffer"> => ({ _tag: "hgetBuffer", key, field }),
  hmget: (key: string, ...fields: ReadonlyArray<string>): Command<"hmget"> => ({ _tag: "hmget", key, fields }),
  hmgetBuffer: (key: string, ...fields: ReadonlyArray<string>): Command<"hmgetBuffer"> => ({
    _tag: "hmgetBuffer",
    key,
    fields
  }),
  hgetall: (key: string): Command<"hgetall"> => ({ _tag: "hgetall", key }),
  hgetallBuffer: (key: string): Command<"hgetallBuffer"> => ({ _tag: "hgetallBuffer", key }),
  hdel: (key: string, ...fields: ReadonlyArray<string>): Command<"hdel"> => ({ _tag: "hdel", key, fields }),
  hlen: (key: string): Command<"hlen"> => ({ _tag: "hlen", key }),
  sadd: (key: string, ...members: ReadonlyArray<string>): Command<"sadd"> => ({ _tag: "sadd", key, members }),
  srem: (key: string, ...members: ReadonlyArray<string>): Command<"srem"> => ({ _tag: "srem", key, members }),
  smembers: (key: string): Command<"smembers"> => ({ _tag: "smembers", key }),
  sismember: (key: string, member: string): Command<"sismember"> => ({ _tag: "sismember", key, member }),
  scard: (key: string): Command<"scard"> => ({ _tag: "scard", key }),
  xadd: (key: string, fields: Readonly<Record<string, Value>>, options?: XAddOptions): Command<"xadd"> => ({
    _tag: "xadd",
    key,
    fields,
    options
  }),
  xrange: (key: string, start = "-", end = "+", count?: number): Command<"xrange"> => ({
    _tag: "xrange",
    key,
    start,
    end,
    count
  }),
  xrevrange: (key: string, end = "+", start = "-", count?: number): Command<"xrevrange"> => ({
    _tag: "xrevrange",
    key,
    end,
    start,
    count
  }),
  xlen: (key: string): Command<"xlen"> => ({ _tag: "xlen", key })
} as const

/** The Redis command name of a tag, for error messages (`hgetallBuffer` -> `HGETALL`). */
export const commandName = (tag: CommandTag): string => (tag.endsWith("Buffer") ? tag.slice(0, -6) : tag).toUpperCase()

/** Builds a result object from `[field, value, field, value, ...]`, safe for keys such as `__proto__`. */
export const pairsToRecord = <A>(flat: ReadonlyArray<A>, key: (a: A) => string): Record<string, A> => {
  const out: Record<string, A> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) assignField(out, key(flat[i]), flat[i + 1])
  return out
}

export const assignField = <A>(out: Record<string, A>, field: string, value: A): void => {
  if (field === "__proto__") {
    Object.defineProperty(out, field, { value, configurable: true, enumerable: true, writable: true })
  } else {
    out[field] = value
  }
}
