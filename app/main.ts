#!/usr/bin/env node
// `npm start`: one node with embedded defaults (or DATABASE_URL / REDIS_URL when set) hosting the seed modules.
import * as Node from "@tessera/runtime/node"
import { seedModules } from "../actors/index.ts"

Node.launch(Node.make("single", seedModules))
