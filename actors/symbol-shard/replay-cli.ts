#!/usr/bin/env node
// `node actors/symbol-shard/replay-cli.ts [--tick 0.01] [--lot 1] < commands.jsonl`
import { replayCommand } from "./replay.ts"

process.exitCode = await replayCommand(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr
})
