#!/usr/bin/env node
// `npx tessera`: the client's core commands, every seed module's (order, book, md, replay, graph, gather, probe), and
// the host's `archive` over the seed modules' retained tables.
import { main } from "@tessera/client/cli"
import { archiveCommand } from "@tessera/runtime/archiveCli"
import { seedCli } from "../actors/cli.ts"
import { seedModules } from "../actors/index.ts"

process.exitCode = await main(
  process.argv.slice(2),
  {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env
  },
  [...seedCli, archiveCommand(seedModules)]
)
