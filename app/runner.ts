#!/usr/bin/env node
// `npm run runner`: one runner of a multi-node cluster (socket transport, Postgres storage) hosting the seed
// modules. Without DATABASE_URL it runs as a single embedded node: two processes cannot share one SQLite file.
import * as Node from "@tessera/runtime/node"
import { seedModules } from "../actors/index.ts"

Node.launch(Node.make("auto", seedModules))
