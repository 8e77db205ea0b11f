/**
 * Gateway handlers of `OrderRpcs`: `Orders.PlaceMany` sends one `SymbolShard.PlaceBatch` per entry, concurrently,
 * and answers each entry with its own outcome. The hot path of the TPS bench: the order arrays are passed through
 * untouched, and the only per-request work is the limit check and one answer object per entry.
 */
import { Control, type Module } from "@tessera/contracts"
import { withDeadline } from "@tessera/platform/Deadline"
import { Cause, Duration, Effect, Option } from "effect"
import type { SqlError } from "effect/sql"
import { SymbolShardConfig } from "./config.ts"
import {
  adminRpcs,
  Halted,
  InvalidManyRequest,
  type ManyEntry,
  maxBatch,
  maxManySymbols,
  OrderRpcs,
  type PlaceOrder,
  ShardUnavailable,
  SymbolAdminRpcs,
  type SymbolBatch,
  type SymbolInfo,
  SymbolShard,
  UnknownSymbol
} from "./protocol.ts"
import { makeAdmin, makeSymbolCheck } from "./symbols.ts"

/** Why a PlaceMany must be refused, or undefined when it is within the limits. */
export const manyRequestProblem = (batches: ReadonlyArray<SymbolBatch>): string | undefined => {
  if (batches.length > maxManySymbols) {
    return `${batches.length} entries exceed the limit of ${maxManySymbols} symbols per request`
  }
  let orders = 0
  for (let i = 0; i < batches.length; i++) {
    orders += batches[i].orders.length
    // At most 64 entries: a pairwise scan allocates nothing and is cheaper than a Set at this size.
    const symbol = batches[i].symbol
    for (let j = 0; j < i; j++) {
      if (batches[j].symbol === symbol) return `symbol ${JSON.stringify(symbol)} appears more than once`
    }
  }
  if (orders > maxBatch) return `${orders} orders in all exceed the limit of ${maxBatch} per request`
  return undefined
}

/** Admission weights of the order RPCs: the orders a request carries (at least 1), so bounds are in orders. */
export const admissionWeights = {
  "Orders.PlaceMany": (payload: unknown): number => {
    const batches = (payload as { readonly batches?: ReadonlyArray<SymbolBatch> } | undefined)?.batches
    if (!Array.isArray(batches)) return 1
    let orders = 0
    for (let i = 0; i < batches.length; i++) orders += batches[i]?.orders?.length ?? 0
    return Math.max(1, orders)
  },
  "SymbolShard.PlaceBatch": (payload: unknown): number => {
    const orders = (payload as { readonly payload?: { readonly orders?: ReadonlyArray<unknown> } } | undefined)?.payload
      ?.orders
    return Array.isArray(orders) ? Math.max(1, orders.length) : 1
  }
} as const

type Payload<T> = { readonly payload: T }

/** The accounts of some orders, each once (a batch usually repeats a few accounts). */
const accountsOf = (orders: ReadonlyArray<{ readonly account: string }>, into: Array<string> = []): Array<string> => {
  for (let i = 0; i < orders.length; i++) {
    const account = orders[i].account
    if (!into.includes(account)) into.push(account)
  }
  return into
}

const adminAccess = Object.fromEntries(adminRpcs.map((tag) => [tag, "admin"] as const)) as Readonly<
  Record<(typeof adminRpcs)[number], Module.AccessRule>
>

/**
 * Who may call the order RPCs (enforced by the gateway's Access middleware on decoded payloads): a place acts for
 * its orders' accounts. A cancel or move names only the order id, and the order's account is known to its shard
 * alone: those need a token holding every account. An order read is answered to a scoped token when the order is
 * one of its accounts'.
 */
export const access = {
  "SymbolShard.Place": { accounts: (payload: unknown) => [(payload as Payload<PlaceOrder>).payload.account] },
  "SymbolShard.PlaceBatch": {
    accounts: (payload: unknown) =>
      accountsOf((payload as Payload<{ orders: ReadonlyArray<PlaceOrder> }>).payload.orders)
  },
  "SymbolShard.Cancel": { accounts: () => undefined },
  "SymbolShard.Move": { accounts: () => undefined },
  // A read: a scoped token gets its own accounts' orders (the answer names the account).
  "SymbolShard.GetOrder": {
    accounts: () => undefined,
    readAccount: (success: unknown) => (success as { readonly account?: string }).account
  },
  // The symbol admin RPCs (and the shard's Reconfigure): admin tokens only, one entry per tag of `adminRpcs`.
  ...adminAccess,
  "Orders.PlaceMany": {
    accounts: (payload: unknown) => {
      const accounts: Array<string> = []
      for (const batch of (payload as { readonly batches: ReadonlyArray<SymbolBatch> }).batches) {
        accountsOf(batch.orders, accounts)
      }
      return accounts
    }
  }
} as const satisfies Readonly<Record<string, Module.AccessRule>>

const describe = (value: unknown): string => {
  if (typeof value === "object" && value !== null && "_tag" in value && typeof value._tag === "string") {
    const message = (value as { message?: unknown }).message
    return typeof message === "string" && message !== "" ? `${value._tag}: ${message}` : value._tag
  }
  if (value instanceof Error) return value.message === "" ? value.name : `${value.name}: ${value.message}`
  return String(value)
}

/** An entry's failure: `UnknownSymbol`, `ShardUnavailable`, `Halted` and `Overloaded` as they are, anything else (cluster error, defect) `ShardUnavailable`. */
export const failedEntry = (symbol: string, cause: Cause.Cause<unknown>): ManyEntry => {
  const failure = Cause.findErrorOption(cause)
  if (
    Option.isSome(failure) &&
    (failure.value instanceof UnknownSymbol ||
      failure.value instanceof ShardUnavailable ||
      failure.value instanceof Halted ||
      failure.value instanceof Control.Overloaded)
  ) {
    return { _tag: "Failed", symbol, error: failure.value }
  }
  let reason: string
  if (Option.isSome(failure)) reason = describe(failure.value)
  else if (Cause.hasDies(cause)) reason = `defect: ${describe(Cause.squash(cause))}`
  else reason = "interrupted"
  return {
    _tag: "Failed",
    symbol,
    error: new ShardUnavailable({
      symbol,
      message: `shard ${symbol} did not answer (${reason}); retry with the same keys`
    })
  }
}

/** Gateway handlers of `OrderRpcs`; needs Sharding (the SymbolShard client). */
export const layerOrderRpcs = OrderRpcs.toLayer(
  Effect.gen(function* () {
    const shards = yield* SymbolShard.client
    const symbolProblem = yield* makeSymbolCheck
    const { placeDeadline } = yield* SymbolShardConfig
    const deadlineMs = Duration.toMillis(placeDeadline)
    // Sends outlive their entry's deadline only until their interruption finishes, in the layer's scope.
    const scope = yield* Effect.scope
    const send = (entry: SymbolBatch): Effect.Effect<ManyEntry> =>
      Effect.matchCause(
        withDeadline(
          shards(entry.symbol).PlaceBatch({ orders: entry.orders }),
          placeDeadline,
          () =>
            Effect.fail(
              new ShardUnavailable({
                symbol: entry.symbol,
                message: `shard ${entry.symbol} did not answer within ${deadlineMs} ms; its orders may still be placed: retry with the same keys`
              })
            ),
          scope
        ),
        {
          onSuccess: (answer): ManyEntry => ({ _tag: "Placed", symbol: entry.symbol, results: answer.results }),
          onFailure: (cause) => failedEntry(entry.symbol, cause)
        }
      )
    // An unconfigured symbol is answered here, so it never becomes a resident entity.
    const place = (entry: SymbolBatch): Effect.Effect<ManyEntry> =>
      Effect.flatMap(symbolProblem(entry.symbol), (problem) =>
        problem === undefined
          ? send(entry)
          : Effect.succeed<ManyEntry>({
              _tag: "Failed",
              symbol: entry.symbol,
              error: new UnknownSymbol({ symbol: entry.symbol, message: problem })
            })
      )
    return OrderRpcs.of({
      "Orders.PlaceMany": ({ batches }) => {
        const problem = manyRequestProblem(batches)
        if (problem !== undefined) return Effect.fail(new InvalidManyRequest({ message: problem }))
        return Effect.map(Effect.forEach(batches, place, { concurrency: "unbounded" }), (results) => ({ results }))
      }
    })
  })
)

/** Storage trouble is a defect of the admin call (the client sees it failed; nothing half-applied: one statement). */
const orDieSql = <A, E extends { readonly _tag: string }>(
  effect: Effect.Effect<A, E | SqlError.SqlError>
): Effect.Effect<A, Exclude<E, SqlError.SqlError>> =>
  Effect.catchIf(
    effect,
    (e): e is SqlError.SqlError => e._tag === "SqlError",
    (e) => Effect.die(e)
  ) as Effect.Effect<A, Exclude<E, SqlError.SqlError>>

/** How long an admin change waits for the running shard to confirm it (it also re-reads its row every 5 s). */
const reconfigureDeadline = Duration.seconds(5)

/**
 * Gateway handlers of `SymbolAdminRpcs`: each change is one conditional statement on `symbols` (the source of
 * truth), then a `Reconfigure` to the symbol's shard so it applies the row without a restart. `applied` says whether
 * the shard confirmed in time; if not, it picks the row up within 5 s (or at its next activation).
 */
export const symbolAdminHandlers = Effect.gen(function* () {
  const admin = yield* makeAdmin
  const shards = yield* SymbolShard.client
  const notify = (symbol: SymbolInfo) =>
    shards(symbol.symbol)
      .Reconfigure()
      .pipe(
        Effect.timeout(reconfigureDeadline),
        Effect.matchCause({
          onSuccess: (answer) => ({ symbol, applied: answer.version >= symbol.version }),
          onFailure: () => ({ symbol, applied: false })
        })
      )
  return SymbolAdminRpcs.of({
    "Symbols.List": () => Effect.map(Effect.orDie(admin.list), (symbols) => ({ symbols })),
    // A new symbol has no resident shard to tell (the gateway never let its id through before).
    "Symbols.Add": (payload) =>
      Effect.map(orDieSql(admin.add(payload)), (symbol) => ({
        symbol,
        applied: true
      })),
    "Symbols.Halt": ({ symbol }) => Effect.flatMap(orDieSql(admin.setHalted(symbol, true)), notify),
    "Symbols.Resume": ({ symbol }) => Effect.flatMap(orDieSql(admin.setHalted(symbol, false)), notify),
    "Symbols.Set": ({ symbol, minQty, maxQty }) =>
      Effect.flatMap(orDieSql(admin.setLimits(symbol, minQty, maxQty)), notify)
  })
})
export const layerSymbolAdminRpcs = SymbolAdminRpcs.toLayer(symbolAdminHandlers)
