/**
 * An actor module's wire contract: the entities it hosts and the gateway RPCs it adds. Clients build on contracts
 * alone (`TesseraClient.make(Api.make(CounterContract), options)`), never on the code that implements them.
 *
 * Every entity is reachable through the gateway as `<EntityType>.<Rpc>` with `{ entityId, payload }` (Effect's
 * entity proxy); the gateway checks the id with the module's validator first and answers `InvalidEntityId`
 * without waking an entity.
 */
import { Schema } from "effect"
import { type Entity, EntityProxy } from "effect/cluster"
import { type Rpc, RpcGroup, RpcMiddleware } from "effect/rpc"
import { ControlRpcs, Overloaded, RequestTimeout } from "./Control.ts"

/** An entity id the entity's module refused at the gateway (bad grammar, out of range, not configured). */
export class InvalidEntityId extends Schema.TaggedError<InvalidEntityId>()("InvalidEntityId", {
  entityType: Schema.String,
  entityId: Schema.String,
  message: Schema.String
}) {}

/** Gateway middleware on every RPC: entity ids are checked before a message reaches sharding. */
export class EntityGuard extends RpcMiddleware.Service<EntityGuard>()("tessera/contracts/EntityGuard", {
  error: InvalidEntityId
}) {}

/** The gateway refused a request at its in-flight bound (defined with the control RPC that sheds load). */
/** The gateway answered a proxied entity request at its deadline; it may still complete (defined in Control.ts). */
export { Overloaded, RequestTimeout }

/**
 * The caller's token does not grant this request: an order for an account the token does not hold, or an admin RPC
 * without an admin token. Nothing was done.
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  rpc: Schema.String,
  message: Schema.String
}) {}

/** Gateway middleware on every RPC, after admission: the caller's token must grant the request (module `access`). */
export class Access extends RpcMiddleware.Service<Access>()("tessera/contracts/Access", {
  error: Forbidden
}) {}

/** Gateway middleware on every RPC, outermost: admission control with bounded in-flight work. */
export class Admission extends RpcMiddleware.Service<Admission>()("tessera/contracts/Admission", {
  error: Schema.Union([Overloaded, RequestTimeout])
}) {}

export interface Contract<Name extends string, Entities extends AnyEntity, Rpcs extends Rpc.Any> {
  /** The module's name, unique in a node (`symbol-shard`, `counter`). */
  readonly name: Name
  readonly entities: ReadonlyArray<Entities>
  /** Gateway RPCs besides the entity proxies (fan-out, admin); tags are `<Prefix>.<Name>` by convention. */
  readonly rpcs: RpcGroup.RpcGroup<Rpcs>
}

/** Any entity (its RPC types vary, so `any`: RpcGroup is invariant in them). */
export type AnyEntity = Entity.Entity<any, any>

export interface Any {
  readonly name: string
  readonly entities: ReadonlyArray<AnyEntity>
  readonly rpcs: RpcGroup.Any & { readonly requests: ReadonlyMap<string, Rpc.AnyWithProps> }
}

const namePattern = /^[a-z][a-z0-9-]{0,62}$/

export const make = <
  const Name extends string,
  const Entities extends ReadonlyArray<AnyEntity>,
  Rpcs extends Rpc.Any = never
>(options: {
  readonly name: Name
  readonly entities: Entities
  readonly rpcs?: RpcGroup.RpcGroup<Rpcs> | undefined
}): Contract<Name, Entities[number], Rpcs> => {
  if (!namePattern.test(options.name)) {
    throw new TypeError(
      `a module name is 1-63 lowercase letters, digits or '-', starting with a letter: ${options.name}`
    )
  }
  return {
    name: options.name,
    entities: options.entities,
    rpcs: options.rpcs ?? (RpcGroup.make() as unknown as RpcGroup.RpcGroup<Rpcs>)
  }
}

type ProxyRpcs<E> = E extends Entity.Entity<infer Type, infer Rpcs> ? EntityProxy.ConvertRpcs<Rpcs, Type> : never

/** Every RPC a contract exposes through the gateway. */
export type ApiRpcs<C> = C extends Contract<string, infer E, infer R> ? ProxyRpcs<E> | R : never

/** A gateway API: the control RPCs plus the contracts' RPCs, guarded by `EntityGuard`, `Access` and `Admission`. */
export type Api<C extends Any> = RpcGroup.RpcGroup<
  Rpc.AddMiddleware<
    Rpc.AddMiddleware<
      Rpc.AddMiddleware<RpcGroup.Rpcs<typeof ControlRpcs> | ApiRpcs<C>, typeof EntityGuard>,
      typeof Access
    >,
    typeof Admission
  >
>

/** The entity type of a proxy RPC tag (`Counter.Increment` -> `Counter`), if it is one of `entityTypes`. */
export const entityTypeOf = (tag: string, entityTypes: ReadonlySet<string>): string | undefined => {
  const dot = tag.indexOf(".")
  if (dot <= 0) return undefined
  const type = tag.slice(0, dot)
  return entityTypes.has(type) ? type : undefined
}

/**
 * The gateway API of some contracts. Refuses two contracts with the same name, entity type or RPC tag: the
 * second would silently shadow the first.
 */
export const api = <const Cs extends ReadonlyArray<Any>>(...contracts: Cs): Api<Cs[number]> => {
  const names = new Set<string>()
  const tags = new Set<string>(ControlRpcs.requests.keys())
  let group = ControlRpcs as unknown as RpcGroup.RpcGroup<any>
  const add = (owner: string, next: RpcGroup.RpcGroup<any>) => {
    for (const tag of next.requests.keys()) {
      if (tags.has(tag)) throw new TypeError(`module ${owner}: RPC ${tag} is already served by another module`)
      tags.add(tag)
    }
    group = group.merge(next)
  }
  for (const contract of contracts) {
    if (names.has(contract.name)) throw new TypeError(`two modules are named ${contract.name}`)
    names.add(contract.name)
    for (const entity of contract.entities) add(contract.name, EntityProxy.toRpcGroup(entity) as never)
    add(contract.name, contract.rpcs as never)
  }
  // Middleware added last runs first: a shed or forbidden request is not even id-checked.
  return group.middleware(EntityGuard).middleware(Access).middleware(Admission) as never
}
