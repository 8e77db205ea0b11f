/**
 * `tessera archive list|restore`: reads the retention archive (runtime/retention.ts) of the node's environment
 * back. It talks to the archive store and the database directly, not through a gateway: run it where a runner's
 * environment is (a one-off task in AWS). The heavy modules load only when the command runs.
 */
import { parseArgs } from "node:util"
import { Cli, type Module } from "@tessera/contracts"
import { Cause, Effect, Exit, Layer } from "effect"
import type { TesseraConfig } from "./config.ts"

const usage = `tessera archive list [--table T] [--from TIME] [--to TIME]
       tessera archive restore --table T --from TIME --to TIME

  list      archived objects (JSON): table, time range, rows, manifest key
  restore   re-insert the archived rows of T whose time is in [--from, --to); rows already in the table are
            skipped, so running it twice inserts nothing the second time

  --table T    a retention name or its table: orderbook_deltas, trades, orders, journal (symbol_journal)
  --from TIME  first time included: ISO 8601 (2026-01-31, 2026-01-31T12:00:00Z) or epoch milliseconds
  --to TIME    first time excluded

Reads the node's environment: TESSERA_ARCHIVE (s3://bucket/prefix or a folder, default TESSERA_DATA/archive),
TESSERA_S3_ENDPOINT, and for restore DATABASE_URL (unset: the embedded database under TESSERA_DATA).`

const options = {
  table: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  help: { type: "boolean", short: "h" }
} as const

/** Epoch milliseconds of `--<flag>`: digits, or an ISO 8601 date or time (UTC unless it names an offset). */
const parseTime = (flag: string, text: string): number => {
  const ms = /^\d{1,16}$/.test(text)
    ? Number(text)
    : /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)
      ? Date.parse(/[T ]/.test(text) && !/(Z|[+-]\d{2}:?\d{2})$/.test(text) ? `${text}Z` : text)
      : Number.NaN
  if (!Number.isFinite(ms)) {
    throw new Cli.UsageError(
      `--${flag} ${JSON.stringify(text)}: expected an ISO 8601 date or time, or epoch milliseconds`
    )
  }
  return ms
}

const retentionOf = (all: ReadonlyArray<Module.Retention>, name: string) => {
  const retention = all.find((r) => r.name === name) ?? all.find((r) => r.table === name)
  if (retention === undefined) {
    throw new Cli.UsageError(
      `--table ${JSON.stringify(name)}: not an archived table (${all.map((r) => r.name).join(", ")})`
    )
  }
  return retention
}

/** The parsed arguments of `tessera archive ...`, or a `UsageError`. */
const parseArchiveArgs = (argv: ReadonlyArray<string>, all: ReadonlyArray<Module.Retention>) => {
  const [sub, ...rest] = argv
  if (sub !== "list" && sub !== "restore") {
    throw new Cli.UsageError(
      sub === undefined
        ? "missing subcommand: list or restore"
        : `unknown subcommand ${JSON.stringify(sub)} (list, restore)`
    )
  }
  let values: { table?: string | undefined; from?: string | undefined; to?: string | undefined }
  try {
    values = parseArgs({ args: rest, options, strict: true, allowPositionals: false }).values
  } catch (error) {
    throw new Cli.UsageError((error as Error).message)
  }
  if (sub === "restore") {
    for (const flag of ["table", "from", "to"] as const) {
      if (values[flag] === undefined) throw new Cli.UsageError(`restore needs --${flag}`)
    }
  }
  const retention = values.table === undefined ? undefined : retentionOf(all, values.table)
  const from = values.from === undefined ? Number.NEGATIVE_INFINITY : parseTime("from", values.from)
  const to = values.to === undefined ? Number.POSITIVE_INFINITY : parseTime("to", values.to)
  if (from >= to) throw new Cli.UsageError("--from must be before --to")
  return { sub, retention, from, to } as const
}

const iso = (ms: number) => new Date(ms).toISOString()

/** The `archive` command over the retentions `modules` declare. */
export const archiveCommand = (modules: ReadonlyArray<Module.Any>): Cli.Command => ({
  name: "archive",
  summary: "list archived table ranges, or restore one (retention archive; reads the archive store directly)",
  usage,
  run: async (argv, io) => {
    const all = modules.flatMap((module) => module.retention ?? [])
    const args = parseArchiveArgs(argv, all)
    const [Retention, Config, Storage] = await Promise.all([
      import("./retention.ts"),
      import("./config.ts"),
      import("./storage.ts")
    ])
    const config = Layer.effect(Config.TesseraConfig)(Config.fromEnv(io.env))
    const program: Effect.Effect<unknown, unknown, TesseraConfig> =
      args.sub === "list"
        ? Effect.map(Retention.list(args.retention?.name), (entries) =>
            entries
              .filter((entry) => entry.toTime >= args.from && entry.fromTime < args.to)
              .map((entry) => ({
                table: entry.name,
                from: iso(entry.fromTime),
                to: iso(entry.toTime),
                rows: entry.rows,
                manifest: entry.manifest
              }))
          ).pipe(Effect.provide(Retention.layerArchiveStore))
        : Retention.restore(args.retention!, args.from, args.to).pipe(
            Effect.provide(Layer.merge(Retention.layerArchiveStore, Storage.layerSql))
          )
    const exit = await Effect.runPromiseExit(program.pipe(Effect.provide(config)))
    if (Exit.isSuccess(exit)) {
      io.stdout.write(`${JSON.stringify(exit.value, null, 2)}\n`)
      return 0
    }
    const error = Cause.squash(exit.cause) as { _tag?: string; message?: string }
    io.stderr.write(`tessera archive: ${error?._tag ?? "Error"}: ${error?.message ?? String(error)}\n`)
    return 1
  }
})
