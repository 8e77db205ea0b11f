/**
 * The `symbols` table, the source of truth of which symbols trade and how: checks at the gateway (the grammar,
 * then the table) and the admin operations behind `Symbols.*`. Configured symbols are remembered for the node's
 * life (a hit is a Set lookup; symbols are never deleted); unknown ones are asked again each time, so a symbol
 * added to the table is seen at once by every gateway.
 */
import { Duration, Effect, Fiber, Option } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { OrderBook } from "./engine/OrderBook.ts"
import { InvalidSymbolConfig, type SymbolInfo, symbolPattern, UnknownSymbol } from "./protocol.ts"

/** How long a gateway waits for the `symbols` lookup of a symbol it has not seen yet. */
const lookupDeadline = Duration.seconds(1)

/** Builds a check: `undefined` for a configured symbol, else why it is refused. */
export const makeSymbolCheck = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const known = new Set<string>()
  return (symbol: string): Effect.Effect<string | undefined> => {
    if (known.has(symbol)) return Effect.succeed(undefined)
    if (!symbolPattern.test(symbol)) return Effect.succeed("a symbol is BASE-QUOTE, each 1-16 of A-Z and 0-9")
    const lookup = sql<{ symbol: string }>`SELECT symbol FROM symbols WHERE symbol = ${symbol}`.pipe(
      Effect.map((rows) => {
        if (rows.length === 0) return `no symbol ${symbol} is configured`
        known.add(symbol)
        return undefined
      })
    )
    // Storage trouble (failed or unanswered) is not the client's fault: let the shard answer (or fail) as it would,
    // within its own deadlines, instead of holding the request on a black-holed database.
    // The lookup runs on past the deadline, detached, only as long as the pool's own timeouts let it.
    return Effect.flatMap(Effect.forkDetach(Effect.orElseSucceed(lookup, () => undefined)), (fiber) =>
      Effect.map(Effect.timeoutOption(Fiber.join(fiber), lookupDeadline), Option.getOrUndefined)
    )
  }
})

interface Row {
  readonly symbol: string
  readonly tick: string
  readonly lot: string
  readonly min_qty: string | null
  readonly max_qty: string | null
  readonly halted: number | string | boolean
  readonly version: number | string
}

const info = (row: Row): SymbolInfo => ({
  symbol: row.symbol,
  tick: row.tick,
  lot: row.lot,
  minQty: row.min_qty,
  maxQty: row.max_qty,
  halted: row.halted === true || Number(row.halted) === 1,
  version: Number(row.version)
})

/**
 * Why a config is refused, or undefined: the engine itself judges tick, lot and limits (the book a shard would
 * build), so what is accepted here is exactly what a shard can run.
 */
export const configProblem = (config: {
  readonly symbol: string
  readonly tick: string
  readonly lot: string
  readonly minQty?: string | undefined
  readonly maxQty?: string | undefined
}): string | undefined => {
  if (!symbolPattern.test(config.symbol)) return "a symbol is BASE-QUOTE, each 1-16 of A-Z and 0-9"
  for (const [name, value] of [
    ["tick", config.tick],
    ["lot", config.lot],
    ["minQty", config.minQty],
    ["maxQty", config.maxQty]
  ] as const) {
    if (value !== undefined && !/^\d{1,20}(\.\d{1,15})?$/.test(value)) {
      return `${name} ${JSON.stringify(value)} is not a plain decimal (at most 15 decimal places)`
    }
  }
  try {
    new OrderBook({ tick: config.tick, lot: config.lot, minQty: config.minQty, maxQty: config.maxQty }, 16, 16)
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

const invalid = (symbol: string, message: string) => new InvalidSymbolConfig({ symbol, message })
const unknown = (symbol: string) =>
  new UnknownSymbol({ symbol, message: `no symbol ${JSON.stringify(symbol)} is configured` })

/** The admin operations on `symbols`; each change bumps the row's version in the same statement. */
export const makeAdmin = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const select = (symbol: string) =>
    Effect.map(
      sql<Row>`SELECT symbol, tick, lot, min_qty, max_qty, halted, version FROM symbols WHERE symbol = ${symbol}`,
      (rows) => (rows.length === 0 ? undefined : info(rows[0]))
    )

  const list: Effect.Effect<ReadonlyArray<SymbolInfo>, SqlError.SqlError> = Effect.map(
    sql<Row>`SELECT symbol, tick, lot, min_qty, max_qty, halted, version FROM symbols ORDER BY symbol`,
    (rows) => rows.map(info)
  )

  const add = (config: {
    readonly symbol: string
    readonly tick: string
    readonly lot: string
    readonly minQty?: string | undefined
    readonly maxQty?: string | undefined
  }): Effect.Effect<SymbolInfo, InvalidSymbolConfig | SqlError.SqlError> =>
    Effect.gen(function* () {
      const problem = configProblem(config)
      if (problem !== undefined) return yield* invalid(config.symbol, problem)
      // ON CONFLICT DO NOTHING: two concurrent adds of one symbol cannot both win, and neither overwrites.
      const rows = yield* sql<Row>`INSERT INTO symbols (symbol, tick, lot, min_qty, max_qty, halted, version)
        VALUES (${config.symbol}, ${config.tick}, ${config.lot}, ${config.minQty ?? null}, ${config.maxQty ?? null}, 0, 1)
        ON CONFLICT (symbol) DO NOTHING
        RETURNING symbol, tick, lot, min_qty, max_qty, halted, version`
      if (rows.length === 0) return yield* invalid(config.symbol, `symbol ${config.symbol} already exists`)
      return info(rows[0])
    })

  const setHalted = (symbol: string, halted: boolean): Effect.Effect<SymbolInfo, UnknownSymbol | SqlError.SqlError> =>
    Effect.flatMap(
      sql<Row>`UPDATE symbols SET halted = ${halted ? 1 : 0}, version = version + 1 WHERE symbol = ${symbol}
        RETURNING symbol, tick, lot, min_qty, max_qty, halted, version`,
      (rows) => (rows.length === 0 ? Effect.fail(unknown(symbol)) : Effect.succeed(info(rows[0])))
    )

  const setLimits = (
    symbol: string,
    minQty: string | undefined,
    maxQty: string | undefined
  ): Effect.Effect<SymbolInfo, UnknownSymbol | InvalidSymbolConfig | SqlError.SqlError> =>
    Effect.gen(function* () {
      const current = yield* select(symbol)
      if (current === undefined) return yield* unknown(symbol)
      if (minQty === undefined && maxQty === undefined) return yield* invalid(symbol, "set needs minQty or maxQty")
      const next = { minQty: minQty ?? current.minQty ?? undefined, maxQty: maxQty ?? current.maxQty ?? undefined }
      const problem = configProblem({ symbol, tick: current.tick, lot: current.lot, ...next })
      if (problem !== undefined) return yield* invalid(symbol, problem)
      // Conditional on the version read: a concurrent change makes this write nothing (retried by the caller).
      const rows =
        yield* sql<Row>`UPDATE symbols SET min_qty = ${next.minQty ?? null}, max_qty = ${next.maxQty ?? null},
        version = version + 1 WHERE symbol = ${symbol} AND version = ${current.version}
        RETURNING symbol, tick, lot, min_qty, max_qty, halted, version`
      if (rows.length === 0) return yield* invalid(symbol, `symbol ${symbol} changed meanwhile; try again`)
      return info(rows[0])
    })

  return { list, add, setHalted, setLimits, select } as const
})
