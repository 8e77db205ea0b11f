#!/usr/bin/env node
// `npx tessera`: the client's core commands plus every seed module's (order, book, md, replay, graph, gather, probe).
import { main } from "@tessera/client/cli"
import { seedCli } from "../actors/cli.ts"

process.exitCode = await main(
  process.argv.slice(2),
  {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env
  },
  seedCli
)
