/**
 * Progress for long-running commands (bench sweeps, graph loads, replays): a redrawn bar on a TTY, plain
 * periodic lines otherwise (CI logs, pipes). Writes to stderr by default so a bench's last stdout line stays
 * its JSON. Lives in runtime/ because the CLI (`tessera replay`) uses it too; `bench/progress.ts` re-exports it.
 *
 *   const bar = progress("replay", { total: lines })
 *   for (...) { ...; bar.tick() }
 *   bar.done()
 */

export interface ProgressOptions {
  /** Units of work expected; without it only counts and rates are shown. */
  readonly total?: number
  /** Where to write (default process.stderr); a TTY gets a bar. */
  readonly stream?: { readonly isTTY?: boolean; readonly columns?: number; write(text: string): unknown }
  /** Plain-line interval when not a TTY (default 5000 ms). */
  readonly intervalMs?: number
  /** Unit name for counts (default none) and rates (`/s`). */
  readonly unit?: string
  /**
   * Stay silent until this many milliseconds have passed (default 0); a run that finishes sooner writes
   * nothing at all, not even its done line. For commands whose stderr is also read by scripts (replay).
   */
  readonly afterMs?: number
  /** Clock in milliseconds (tests pass their own). */
  readonly now?: () => number
}

export interface Progress {
  /** Adds `n` units done (default 1). Cheap: draws at most every 100 ms (TTY) or `intervalMs`. */
  tick(n?: number): void
  /** Sets the units done. */
  set(done: number): void
  /** A short status shown after the numbers (`sweep 3/8: 4000 ops/s`). */
  note(text: string): void
  /** Final line with the total and overall rate. */
  done(): void
  /** On a TTY, erases the bar so that a log line can be written (the next draw brings it back). */
  clear(): void
}

const formatCount = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}G`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(2)}M`
      : n >= 1e4
        ? `${(n / 1e3).toFixed(1)}k`
        : `${Math.round(n)}`

const formatDuration = (seconds: number) => {
  if (!Number.isFinite(seconds)) return "?"
  if (seconds < 60) return `${Math.ceil(seconds)}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, "0")}s`
  return `${Math.floor(seconds / 3600)}h${String(Math.round((seconds % 3600) / 60)).padStart(2, "0")}m`
}

export const progress = (label: string, options: ProgressOptions = {}): Progress => {
  const stream = options.stream ?? process.stderr
  const tty = stream.isTTY === true
  const now = options.now ?? (() => performance.now())
  const total = options.total
  const unit = options.unit ? ` ${options.unit}` : ""
  const interval = tty ? 100 : (options.intervalMs ?? 5000)
  const started = now()
  const silentUntil = started + (options.afterMs ?? 0)
  let done = 0
  let note = ""
  let lastDraw = started
  let finished = false
  let drawn = false

  const summary = (elapsedS: number, final = false) => {
    const rate = elapsedS > 0 ? done / elapsedS : 0
    const counts =
      total !== undefined ? `${formatCount(done)}/${formatCount(total)}${unit}` : `${formatCount(done)}${unit}`
    const eta =
      !final && total !== undefined && rate > 0 && done < total ? ` eta ${formatDuration((total - done) / rate)}` : ""
    return `${counts} ${formatCount(rate)}${unit}/s${eta}${note ? ` ${note}` : ""}`
  }

  const draw = (t: number) => {
    lastDraw = t
    const elapsed = (t - started) / 1000
    if (tty) {
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 60))
      const fraction = total !== undefined && total > 0 ? Math.min(1, done / total) : undefined
      const bar =
        fraction !== undefined
          ? `[${"#".repeat(Math.round(fraction * width)).padEnd(width, ".")}] ${String(Math.floor(fraction * 100)).padStart(3)}% `
          : ""
      stream.write(`\r\x1b[2K${label} ${bar}${summary(elapsed)}`)
      drawn = true
    } else {
      const percent = total !== undefined && total > 0 ? ` (${Math.floor((done / total) * 100)}%)` : ""
      stream.write(`${label}: ${summary(elapsed)}${percent}\n`)
    }
  }

  const maybeDraw = () => {
    const t = now()
    if (t - lastDraw >= interval && t >= silentUntil) draw(t)
  }

  return {
    tick(n = 1) {
      done += n
      maybeDraw()
    },
    set(value: number) {
      done = value
      maybeDraw()
    },
    note(text: string) {
      note = text
      maybeDraw()
    },
    done() {
      if (finished) return
      finished = true
      const t = now()
      if (t < silentUntil) return
      const elapsed = (t - started) / 1000
      note = ""
      const line = `${label}: done, ${summary(elapsed, true)} in ${formatDuration(elapsed)}`
      stream.write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`)
    },
    clear() {
      if (!tty || !drawn) return
      drawn = false
      stream.write("\r\x1b[2K")
    }
  }
}

/**
 * Runs `work` while moving `bar` from `from` toward `from + span` with the wall-clock seconds it takes (for
 * timed phases such as a sweep step: units are seconds); ends at `from + span`.
 */
export const advanceWhile = async <A>(
  bar: Progress,
  from: number,
  span: number,
  work: () => Promise<A>
): Promise<A> => {
  const started = performance.now()
  const timer = setInterval(() => bar.set(Math.min(from + span, from + (performance.now() - started) / 1000)), 250)
  timer.unref()
  try {
    return await work()
  } finally {
    clearInterval(timer)
    bar.set(from + span)
  }
}
