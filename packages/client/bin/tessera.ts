#!/usr/bin/env node
// `tessera`: the core commands (status). A project's own entry adds its modules' commands: see app/tessera.ts.
import { main } from "../src/cli.ts"

process.exitCode = await main(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env
})
