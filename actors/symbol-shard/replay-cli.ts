#!/usr/bin/env node
// `node actors/symbol-shard/replay-cli.ts [--tick 0.01] [--lot 1] < commands.jsonl`
import { replayCommand } from "./replay.ts"

// A reader that stops early (`| head`) is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0)
  throw e
})
process.exitCode = await replayCommand(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr
})
