/**
 * The shape of a `tessera` CLI command. Modules contribute commands (loaded only when run), the client's CLI
 * dispatches them: JSON on stdout, errors on stderr with a non-zero exit.
 */

export interface Io {
  readonly stdin: NodeJS.ReadableStream
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: Record<string, string | undefined>
}

/** Bad arguments: the CLI prints the message and the command's usage, and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError"
}

export interface Command {
  /** The word after `tessera` (`order`, `graph`). */
  readonly name: string
  readonly summary: string
  readonly usage: string
  /** Runs the command and resolves to its exit code; loaded on first use so other commands start fast. */
  readonly run: (argv: ReadonlyArray<string>, io: Io) => Promise<number>
}
