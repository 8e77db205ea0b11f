/**
 * Which symbols exist, for checks at the gateway: the grammar, then the `symbols` table. Configured symbols are
 * remembered for the node's life (a hit is a Set lookup); unknown ones are asked again each time, so a symbol added
 * to the table is seen at once.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { symbolPattern } from "./protocol.ts"

/** Builds a check: `undefined` for a configured symbol, else why it is refused. */
export const makeSymbolCheck = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const known = new Set<string>()
  return (symbol: string): Effect.Effect<string | undefined> => {
    if (known.has(symbol)) return Effect.succeed(undefined)
    if (!symbolPattern.test(symbol)) return Effect.succeed("a symbol is BASE-QUOTE, each 1-16 of A-Z and 0-9")
    return sql<{ symbol: string }>`SELECT symbol FROM symbols WHERE symbol = ${symbol}`.pipe(
      Effect.map((rows) => {
        if (rows.length === 0) return `no symbol ${symbol} is configured`
        known.add(symbol)
        return undefined
      }),
      // Storage trouble is not the client's fault: let the shard answer (or fail) as it would.
      Effect.orElseSucceed(() => undefined)
    )
  }
})
