/**
 * The slice of SST's global platform types that `sst.config.ts` uses, for typechecking without `.sst/platform`.
 *
 * `sst install` writes the real ones to `.sst/platform/config.d.ts`; it needs the npm registry and, unless
 * `SST_SKIP_DEPENDENCY_CHECK=1`, downloads the Pulumi CLI from GitHub, so CI and the tests use this shim. The
 * shapes are copied from SST 4.17.1 `platform/src/config.ts` and `global.d.ts` (`App`, `AppInput`, `Config`,
 * `$app`); docs/deploy.md shows how the same files were checked against the real declarations.
 */
interface SstApp {
  name: string
  home: "aws" | "cloudflare" | "local"
  removal?: "remove" | "retain" | "retain-all"
  protect?: boolean
  version?: string
  providers?: Record<string, unknown>
}

interface SstConfig {
  app(input: { stage: string }): SstApp | Promise<SstApp>
  run(): Promise<Record<string, unknown> | void>
}

declare const $config: (input: SstConfig) => SstConfig

declare const $app: Readonly<{
  name: string
  stage: string
  removal: "remove" | "retain" | "retain-all"
  protect: boolean
  providers: Record<string, unknown> | undefined
}>
