/**
 * Gateway access: who a bearer token is, and what it may call.
 *
 * Tokens (`TESSERA_TOKEN`: full access, admin; `TESSERA_TOKENS`: scoped to accounts) are looked up by their SHA-256
 * digest, so no comparison ever runs over a secret: a guess's timing tells nothing about a real token. The `Access`
 * middleware applies the modules' `access` rules per RPC: an order for an account the token does not hold, or an admin
 * RPC without an admin token, is refused with a typed `Forbidden` before any handler runs.
 */
import { createHash } from "node:crypto"
import { Contract, type Module } from "@tessera/contracts"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { TesseraConfig, type TesseraConfigShape } from "./config.ts"

/** What a token may do. */
export interface Grant {
  /** The accounts it may act for; `"*"`: every account. */
  readonly accounts: ReadonlySet<string> | "*"
  readonly admin: boolean
}

/** The gateway's tokens. `enabled` is false when none is configured (local use: everything is open). */
export interface Principals {
  readonly enabled: boolean
  /** The grant of a presented token, `undefined` for an unknown one. */
  readonly resolve: (token: string) => Grant | undefined
}

const digest = (token: string) => createHash("sha256").update(token).digest("base64")

export const makePrincipals = (config: Pick<TesseraConfigShape, "token" | "tokens">): Principals => {
  const grants = new Map<string, Grant>()
  for (const grant of config.tokens) {
    grants.set(digest(Redacted.value(grant.token)), {
      accounts: grant.accounts === "*" ? "*" : new Set(grant.accounts),
      admin: grant.admin
    })
  }
  if (Option.isSome(config.token))
    grants.set(digest(Redacted.value(config.token.value)), { accounts: "*", admin: true })
  return {
    enabled: grants.size > 0,
    resolve: (token) => (token.length === 0 || token.length > 4096 ? undefined : grants.get(digest(token)))
  }
}

/** The gateway's principals, built once from its config. */
export class PrincipalsService extends Context.Service<PrincipalsService, Principals>()(
  "tessera/runtime/access/Principals"
) {}

export const layerPrincipals = Layer.effect(PrincipalsService)(Effect.map(TesseraConfig, makePrincipals))

/** The bearer token of an `Authorization` header, if it has one. */
export const bearerOf = (header: string | undefined): string | undefined =>
  header?.startsWith("Bearer ") ? header.slice(7) : undefined

/** Every module's access rules by RPC tag. */
export const rulesOf = (modules: ReadonlyArray<Module.Any>): ReadonlyMap<string, Module.AccessRule> => {
  const rules = new Map<string, Module.AccessRule>()
  for (const module of modules) {
    for (const [tag, rule] of Object.entries(module.access ?? {})) rules.set(tag, rule)
  }
  return rules
}

/** Why `grant` may not make this request, or undefined when it may. */
export const refusal = (rule: Module.AccessRule, grant: Grant, payload: unknown): string | undefined => {
  if (grant.admin) return undefined
  if (rule === "admin") return "an admin token is required"
  if (grant.accounts === "*") return undefined
  const accounts = rule.accounts(payload)
  if (accounts === undefined) return "this request does not name its account: it needs a token for every account"
  for (let i = 0; i < accounts.length; i++) {
    if (!grant.accounts.has(accounts[i])) return `the token does not hold account ${JSON.stringify(accounts[i])}`
  }
  return undefined
}

/**
 * The `Access` middleware over `modules`' rules. The HTTP layer has already refused requests without a valid token;
 * here the token is read again from the request's headers (a WebSocket's are its upgrade request's).
 */
export const layer = (modules: ReadonlyArray<Module.Any>) =>
  Layer.effect(Contract.Access)(
    Effect.map(PrincipalsService, (principals): Contract.Access["Service"] => {
      const rules = rulesOf(modules)
      if (!principals.enabled || rules.size === 0) return (effect) => effect
      return (effect, { rpc, payload, headers }) => {
        const rule = rules.get(rpc._tag)
        if (rule === undefined) return effect
        const token = bearerOf(headers.authorization)
        const grant = token === undefined ? undefined : principals.resolve(token)
        const forbidden = (problem: string) =>
          Effect.fail(new Contract.Forbidden({ rpc: rpc._tag, message: `${rpc._tag} refused: ${problem}` }))
        if (grant === undefined) return forbidden("no valid bearer token")
        const problem = refusal(rule, grant, payload)
        if (problem === undefined) return effect
        // A read that does not name its account is answered only when its answer is one of the token's accounts'.
        if (rule === "admin" || rule.readAccount === undefined || grant.accounts === "*") return forbidden(problem)
        if (rule.accounts(payload) !== undefined) return forbidden(problem)
        const { readAccount } = rule
        const held = grant.accounts
        return Effect.flatMap(effect, (success) => {
          const account = readAccount(success)
          return account !== undefined && held.has(account)
            ? Effect.succeed(success)
            : forbidden("the token does not hold the account this answer belongs to")
        })
      }
    })
  )
