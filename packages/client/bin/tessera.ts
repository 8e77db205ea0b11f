#!/usr/bin/env node
import { main } from "../src/cli.ts"

const code = await main(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env
})
process.exitCode = code
