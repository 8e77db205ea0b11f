/**
 * An actor module's manifest: everything a Tessera host needs to run one kind of actor. A host folds a list of
 * manifests (entities, gateway RPCs, migrations, config, id checks) and names no actor itself.
 *
 * ```ts
 * export const CounterModule = Module.make({
 *   contract: CounterContract,
 *   layer: CounterEntityLayer,
 *   migrations: { table: "counter_migrations", migrations },
 *   entityIds: Effect.succeed({ Counter: (id) => Effect.succeed(/^[a-z0-9-]{1,64}$/.test(id) ? undefined : "...") })
 * })
 * ```
 */
import type { Effect, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import type { Command } from "./Cli.ts"
import type * as Contract from "./Contract.ts"
import type * as MarketData from "./MarketData.ts"

/** Migration effects keyed `"<id>_<name>"` (`"1_counters"`), applied in id order, once per database. */
export type Migrations = Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>

/**
 * Checks an entity id at the gateway: `undefined` when it is valid, else the reason it is refused (sent to the
 * client in an `InvalidEntityId`). Runs on every proxied request, so keep it cheap (a pattern, a range, a cache).
 */
export type EntityIdCheck = (entityId: string) => Effect.Effect<string | undefined>

/**
 * The admission weight of one request of an RPC (e.g. the orders it carries), counted against the gateway's
 * in-flight bounds while it runs. Called on every request before its handler: keep it cheap. Default 1.
 */
export type AdmissionWeight = (payload: unknown) => number

/**
 * Who may call an RPC (module `access`): `"admin"`, only an admin token; or `accounts`, the accounts a request acts
 * for (read from the decoded payload, cheap: it runs on every request), each of which the token must hold.
 * `accounts` answering `undefined` means the payload does not say (e.g. a cancel by order id): only a token that
 * holds every account may call it, unless the RPC only reads and declares `readAccount`, the account of its answer:
 * then it runs and its answer is replaced by `Forbidden` when the token does not hold that account. RPCs without a
 * rule are open to every valid token.
 */
export type AccessRule =
  | "admin"
  | {
      readonly accounts: (payload: unknown) => ReadonlyArray<string> | undefined
      /** For RPCs without effects only: the account an answer belongs to (`undefined`: unknown, refused). */
      readonly readAccount?: ((success: unknown) => string | undefined) | undefined
    }

/** A shard group of the module's entities that prefers runners of one availability zone. */
export interface ZoneGroup {
  readonly group: string
  readonly zone: string
}

/** A figure of the module on the node's status page, read at each refresh. */
export interface StatusTile {
  readonly label: string
  /** Hover text: what the figure counts. */
  readonly title: string
  readonly read: () => string
}

/**
 * A table whose old rows the host archives to the object store and then deletes (see runtime/retention.ts): rows
 * with `timeColumn` older than the table's configured retention (`TESSERA_RETENTION=<name>=<duration>,...`) that
 * also meet `where`. Names are SQL identifiers of the module's own tables; `where` is trusted SQL written by the
 * module (it runs inside the job's statements), never user input.
 */
export interface Retention {
  /** Config name of this retention (`trades`, `orders`); unique over all modules. */
  readonly name: string
  readonly table: string
  /** Epoch milliseconds (BIGINT), indexed: the job selects and orders by it. */
  readonly timeColumn: string
  /** Primary key columns: the batch order after the time, the delete key and the restore conflict target. */
  readonly key: ReadonlyArray<string>
  /** A further predicate on the table's rows (unqualified columns), e.g. finished orders only. */
  readonly where?: string | undefined
}

/**
 * `C`: the contract; `R`: what the module's layers need; `Config`: the services its config slice provides (so a host
 * needs to provide only `Exclude<R, Config>`, see `Requirements`).
 */
export interface Module<C extends Contract.Any = Contract.Any, R = any, Config = never> {
  readonly name: C["name"]
  readonly contract: C
  /** The entities and background work (singletons, timers), built on the host's platform services. */
  readonly layer: Layer.Layer<never, unknown, R>
  /**
   * Gateway handlers of `contract.rpcs`, and of entity proxies the module serves itself (the host serves the
   * others with Effect's entity proxy).
   */
  readonly handlers?: Layer.Layer<any, unknown, R> | undefined
  /** The module's config slice (read through Effect `Config`, so the host's provider decides where from). */
  readonly config?: Layer.Layer<Config, unknown, never> | undefined
  /** Its variables for help text: `[name, meaning (default)]`. */
  readonly variables?: ReadonlyArray<readonly [name: string, meaning: string]> | undefined
  /** SQL migrations, run by the host before `layer` builds, recorded in their own `table`. */
  readonly migrations?: { readonly table: string; readonly migrations: Migrations } | undefined
  /**
   * Builds the id checks, by entity type, once per node (a check may keep a cache). Every id must also pass the
   * host's grammar: 1-256 characters, no control characters.
   */
  readonly entityIds?: Effect.Effect<Readonly<Record<string, EntityIdCheck>>, unknown, R> | undefined
  /** What clients may subscribe to through the gateway's `MarketData.Subscribe` (built once per node). */
  readonly marketData?: Effect.Effect<ReadonlyArray<MarketData.Source>, unknown, R> | undefined
  /** Admission weights by RPC tag (proxied entity RPCs are `<EntityType>.<Rpc>`); unlisted RPCs weigh 1. */
  readonly admissionWeights?: Readonly<Record<string, AdmissionWeight>> | undefined
  /** Access rules by RPC tag (proxied entity RPCs are `<EntityType>.<Rpc>`), enforced by the gateway's `Access`. */
  readonly access?: Readonly<Record<string, AccessRule>> | undefined
  /** Extra shard groups with a zone preference (read from the module's config). */
  readonly zoneGroups?: Effect.Effect<ReadonlyArray<ZoneGroup>, unknown, R> | undefined
  /** The entities a runner's standby identity hosts for zone groups whose own zone has no live runner. */
  readonly standby?: Layer.Layer<never, unknown, R> | undefined
  /** Metric families the module declares (names), listed in docs and checked by tests. */
  readonly metrics?: ReadonlyArray<string> | undefined
  readonly statusTiles?: ReadonlyArray<StatusTile> | undefined
  /** Tables whose old rows the host's retention job archives and deletes (off until configured). */
  readonly retention?: ReadonlyArray<Retention> | undefined
  /** Commands the module adds to the `tessera` CLI. */
  readonly cli?: ReadonlyArray<Command> | undefined
}

// Config `never` admits every module: a layer providing X also counts as providing `never` (`Layer<in ROut>`).
export type Any = Module<Contract.Any, any, never>

/** What a host must provide to run module `M`: its layers' needs less what its own config slice provides. */
export type Requirements<M> = M extends Module<any, infer R, infer Config> ? Exclude<R, Config> : never

/** A manifest; `name` comes from the contract. */
export const make = <C extends Contract.Any, R = never, Config = never>(
  module: Omit<Module<C, R, Config>, "name">
): Module<C, R, Config> => ({
  name: module.contract.name,
  ...module
})
