/** Progress for bench sweeps and loads: see `@tessera/platform/Progress` (shared with the CLI's `tessera replay`). */
export { advanceWhile, type Progress, progress } from "@tessera/platform/Progress"
