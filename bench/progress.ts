/** Progress for bench sweeps and loads: see `runtime/progress.ts` (shared with the CLI's `tessera replay`). */
export { advanceWhile, type Progress, type ProgressOptions, progress } from "@tessera/platform/Progress"
