#!/usr/bin/env node
// `npm start`: one node with embedded defaults (or DATABASE_URL / REDIS_URL when set), all actor kinds, the gateway.
import * as Node from "./node.ts"

Node.launch(Node.make("single"))
