#!/usr/bin/env node
// `npm run pack [-- --out DIR]`: builds the five @tessera packages (JS and .d.ts with tsc, each against its
// dependencies' built .d.ts) and packs them as installable tarballs into DIR (default .pack/). In the repo the
// packages export their .ts sources; a tarball exports built files, since node does not strip types in node_modules.
// Prints one tarball path per line on stdout; progress goes to stderr.
import { spawn, spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"

const repoRoot = resolve(import.meta.dirname, "..")

/** Build levels: a package is built after every package it imports (its tsconfig.build.json `paths` say which). */
const levels: ReadonlyArray<ReadonlyArray<string>> = [
  ["packages/contracts", "packages/platform"],
  ["packages/client", "packages/testing", "runtime"]
]

const { values } = parseArgs({ options: { out: { type: "string", default: join(repoRoot, ".pack") } } })
const out = resolve(values.out)
const stage = join(out, "stage")

const log = (line: string) => process.stderr.write(`${line}\n`)

const tsc = (dir: string) =>
  new Promise<void>((resolveBuild, reject) => {
    rmSync(join(repoRoot, dir, "dist"), { recursive: true, force: true })
    const child = spawn(join(repoRoot, "node_modules", ".bin", "tsc"), ["-p", join(dir, "tsconfig.build.json")], {
      cwd: repoRoot,
      stdio: ["ignore", "inherit", "inherit"]
    })
    child.once("error", reject)
    child.once("exit", (code) => (code === 0 ? resolveBuild() : reject(new Error(`tsc failed for ${dir} (${code})`))))
  })

const filesUnder = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })

// tsc keeps `./x.ts` specifiers in .d.ts files; `./x.js` is the form every TypeScript version maps to `x.d.ts`.
const relativeTs = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g

/** `./src/x.ts` (a source path in the repo's package.json) as built files. */
const built = (source: string) => {
  const path = source.replace(/^\.\//, "./dist/")
  return { types: path.replace(/\.ts$/, ".d.ts"), default: path.replace(/\.ts$/, ".js") }
}

interface PackageJson {
  name: string
  private?: boolean
  exports?: Record<string, string>
  bin?: Record<string, string>
  [key: string]: unknown
}

const stagePackage = (dir: string) => {
  const from = join(repoRoot, dir)
  const manifest = JSON.parse(readFileSync(join(from, "package.json"), "utf8")) as PackageJson
  const to = join(stage, manifest.name.replace(/^@tessera\//, ""))
  rmSync(to, { recursive: true, force: true })
  mkdirSync(to, { recursive: true })
  cpSync(join(from, "dist"), join(to, "dist"), { recursive: true })
  for (const file of filesUnder(join(to, "dist"))) {
    if (file.endsWith(".d.ts")) writeFileSync(file, readFileSync(file, "utf8").replace(relativeTs, "$1$2.js$3"))
  }
  const { private: _private, exports, bin, ...rest } = manifest
  const rootExport = exports?.["."]
  const staged = {
    ...rest,
    // For consumers still on `moduleResolution: node10`, which ignores `exports`.
    ...(rootExport === undefined ? {} : { main: built(rootExport).default, types: built(rootExport).types }),
    exports: Object.fromEntries(Object.entries(exports ?? {}).map(([key, source]) => [key, built(source)])),
    ...(bin === undefined
      ? {}
      : { bin: Object.fromEntries(Object.entries(bin).map(([name, source]) => [name, built(source).default])) }),
    files: ["dist"]
  }
  writeFileSync(join(to, "package.json"), `${JSON.stringify(staged, null, 2)}\n`)
  if (existsSync(join(repoRoot, "LICENSE"))) cpSync(join(repoRoot, "LICENSE"), join(to, "LICENSE"))
  return to
}

const startedAt = Date.now()
for (const level of levels) {
  log(`tsc: ${level.join(", ")}`)
  await Promise.all(level.map(tsc))
}
const staged = levels.flat().map(stagePackage)
mkdirSync(out, { recursive: true })
const packed = spawnSync("npm", ["pack", ...staged, "--pack-destination", out, "--json", "--silent"], {
  cwd: out,
  encoding: "utf8"
})
if (packed.status !== 0) throw new Error(`npm pack failed:\n${packed.stderr}`)
const tarballs = (JSON.parse(packed.stdout) as Array<{ filename: string }>).map(({ filename }) =>
  join(out, filename.replace(/^.*\//, ""))
)
log(`packed ${tarballs.length} packages in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`)
process.stdout.write(`${tarballs.join("\n")}\n`)
