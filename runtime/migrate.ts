/**
 * `tessera-migrate`: applies a node's whole schema as the owner role and exits, so runners can start with
 * `TESSERA_MIGRATE=false` as the application role, which may read and write but create nothing. The schema is
 * effect/cluster's runner and message tables, `tessera_runners` and every module's migrations; then, with
 * `TESSERA_APP_DB_PASSWORD`, the application role (`TESSERA_APP_DB_ROLE`) is created or updated with its grants.
 * Idempotent: run it before every deploy.
 */
import { NodeRuntime } from "@effect/platform-node"
import type { Module } from "@tessera/contracts"
import { invalid } from "@tessera/platform/ConfigKit"
import { Effect, Layer, Option, Redacted } from "effect"
import { SqlMessageStorage, SqlRunnerStorage } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { appRoleStatements } from "./appRole.ts"
import * as Config from "./config.ts"
import * as Hosted from "./hosted.ts"
import * as NodeStatus from "./NodeStatus.ts"
import { layerSql } from "./storage.ts"

/** The schema of a node hosting `modules`, then the application role; needs the owner's connection. */
export const layer = (modules: ReadonlyArray<Module.Any>) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const config = yield* Config.TesseraConfig
      const sql = yield* SqlClient.SqlClient
      yield* NodeStatus.migrate(sql)
      if (Option.isNone(config.appDbPassword)) {
        yield* Effect.logInfo("schema applied; TESSERA_APP_DB_PASSWORD not set, so no application role changed")
        return
      }
      // The role's default privileges name the owner: whoever runs this creates the tables.
      const [{ owner }] = yield* sql<{ readonly owner: string }>`SELECT current_user AS owner`
      for (const statement of appRoleStatements(owner, Redacted.value(config.appDbPassword.value), config.appDbRole)) {
        yield* sql.unsafe(statement)
      }
      yield* Effect.logInfo(`schema applied; role ${config.appDbRole} may read and write every table of ${owner}`)
    })
  ).pipe(
    // Tables first: the grants cover the tables that exist when they run.
    Layer.provide(
      Layer.mergeAll(
        SqlRunnerStorage.layerMigrations({}),
        SqlMessageStorage.layerMigrations({}),
        Hosted.layerMigrations(modules)
      )
    )
  )

/** Runs the migration with the environment's config (`DATABASE_URL` is required) and exits. */
export const run = (modules: ReadonlyArray<Module.Any>) =>
  Effect.gen(function* () {
    const config = yield* Config.TesseraConfig
    if (Option.isNone(config.databaseUrl)) {
      return yield* Effect.fail(invalid("tessera-migrate needs DATABASE_URL (the owner role's PostgreSQL URL)"))
    }
    yield* Layer.build(layer(modules).pipe(Layer.provide(layerSql)))
  }).pipe(Effect.scoped, Effect.provide(Config.layerFromEnv), NodeRuntime.runMain)
