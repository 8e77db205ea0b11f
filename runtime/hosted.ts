/**
 * Folding modules into a node: each module's layers get its own config slice; migrations run before any module
 * layer builds; the gateway's id guard asks each entity type's module.
 */
import { Contract, type Module } from "@tessera/contracts"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Effect, Layer } from "effect"
import { TesseraConfig } from "./config.ts"

/** `layer` with the module's config slice provided (read through the current `ConfigProvider`). */
export const withConfig = <A, E, R>(module: Module.Any, layer: Layer.Layer<A, E, R>) =>
  module.config === undefined ? layer : layer.pipe(Layer.provide(module.config))

/** An effect of the module's with its config slice provided. */
export const effectWithConfig = <A, E, R>(module: Module.Any, effect: Effect.Effect<A, E, R>) =>
  module.config === undefined ? effect : Effect.provide(effect, module.config)

/** Every module's migrations (each in its own table), then every module's entities and background work. */
export const layerModules = (modules: ReadonlyArray<Module.Any>) => {
  const names = new Set<string>()
  for (const module of modules) {
    if (names.has(module.name)) throw new TypeError(`two modules are named ${module.name}`)
    names.add(module.name)
  }
  // With TESSERA_MIGRATE=false the schema is `tessera-migrate`'s (migrate.ts): this node runs no DDL.
  const migrations = Layer.unwrap(
    Effect.map(TesseraConfig, (config) => (config.migrate ? layerMigrations(modules) : Layer.empty))
  )
  return Layer.mergeAll(Layer.empty, ...modules.map((module) => withConfig(module, module.layer))).pipe(
    Layer.provide(migrations)
  )
}

/** Every module's migrations, each in its own history table. */
export const layerMigrations = (modules: ReadonlyArray<Module.Any>) =>
  Layer.mergeAll(
    Layer.empty,
    ...modules.flatMap((module) => (module.migrations === undefined ? [] : [SqlMigrator.layer(module.migrations)]))
  )

/** The zone groups all modules declare. */
export const zoneGroups = (modules: ReadonlyArray<Module.Any>) =>
  Effect.map(
    Effect.forEach(modules, (module) =>
      module.zoneGroups === undefined ? Effect.succeed([]) : effectWithConfig(module, module.zoneGroups)
    ),
    (groups) => groups.flat() as ReadonlyArray<Module.ZoneGroup>
  )

/** The entities a runner's standby identity hosts: every module's `standby` layer. */
export const standbyLayer = (modules: ReadonlyArray<Module.Any>) =>
  Layer.mergeAll(
    Layer.empty,
    ...modules.flatMap((module) => (module.standby === undefined ? [] : [withConfig(module, module.standby)]))
  )

/** Every entity id must pass this before its module is asked: 1-256 characters, no control characters. */
const hostIdOk = (id: string): boolean => {
  if (id.length === 0 || id.length > 256) return false
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i)
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false
  }
  return true
}

/**
 * The gateway middleware that checks the entity id of every proxied request: the host's grammar, then the entity
 * type's module check. A refused id is answered `InvalidEntityId` and no message reaches sharding.
 */
export const layerEntityGuard = (modules: ReadonlyArray<Module.Any>) =>
  Layer.effect(Contract.EntityGuard)(
    Effect.gen(function* () {
      const checks = new Map<string, Module.EntityIdCheck | undefined>()
      for (const module of modules) {
        const built = module.entityIds === undefined ? {} : yield* effectWithConfig(module, module.entityIds)
        for (const entity of module.contract.entities) checks.set(entity.type, built[entity.type])
      }
      const types = new Set(checks.keys())
      const refuse = (entityType: string, entityId: string, reason: string) =>
        Effect.fail(new Contract.InvalidEntityId({ entityType, entityId, message: `entity id refused: ${reason}` }))
      return (effect, { payload, rpc }) => {
        const entityType = Contract.entityTypeOf(rpc._tag, types)
        if (entityType === undefined) return effect
        const entityId = (payload as { readonly entityId: string }).entityId
        if (typeof entityId !== "string" || !hostIdOk(entityId)) {
          return refuse(entityType, entityId, "ids are 1-256 characters with no control characters")
        }
        const check = checks.get(entityType)
        if (check === undefined) return effect
        return Effect.flatMap(check(entityId), (reason) =>
          reason === undefined ? effect : refuse(entityType, entityId, reason)
        )
      }
    })
  )
