#!/usr/bin/env node
// A node hosting the counter: embedded storage under TESSERA_DATA, or a cluster runner when DATABASE_URL is set.
import * as Node from "@tessera/runtime/node"
import { CounterModule } from "./module.ts"

Node.launch(Node.make("auto", [CounterModule]))
