#!/usr/bin/env node
// `npm run runner`: one runner of a multi-node cluster (socket transport, Postgres storage). Without
// DATABASE_URL it runs as a single embedded node: two processes cannot share one SQLite file.
import * as Node from "./node.ts"

Node.launch(Node.make("auto"))
