#!/usr/bin/env node
// `npm run migrate`: applies the seed modules' schema as the owner role (DATABASE_URL), creates or updates the
// application role (TESSERA_APP_DB_PASSWORD), and exits; runners then start with TESSERA_MIGRATE=false as that role.
import * as Migrate from "@tessera/runtime/migrate"
import { seedModules } from "../actors/index.ts"

Migrate.run(seedModules)
