#!/usr/bin/env node
// The npm mirror on our build machines serves only some platform builds of packages like @biomejs/cli-* and
// @deno/*, so `npm install` writes a package-lock.json without entries for the others, and `npm ci` then
// refuses the lock as out of sync. This adds a stub entry (version, os, cpu, libc, optional) for every missing
// optional platform dependency; npm ci skips them on other platforms, exactly as with a complete lock.
// Run after `npm install`: node scripts/complete-lock.mjs
import { readFileSync, writeFileSync } from "node:fs"

const path = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(path, "utf8"))
const packages = lock.packages
const osNames = ["android", "darwin", "linux", "win32", "freebsd", "openbsd", "sunos", "aix"]
const cpuNames = ["arm64", "x64", "ia32", "arm", "ppc64", "s390x", "riscv64", "loong64"]

const platformOf = (name) => {
  const parts = name.split("/").pop().split("-")
  const os = parts.find((part) => osNames.includes(part))
  const cpu = parts.find((part) => cpuNames.includes(part))
  if (os === undefined || cpu === undefined) return undefined
  const libc = os === "linux" ? (parts.includes("musl") ? "musl" : "glibc") : undefined
  return { os, cpu, libc }
}

let added = 0
for (const [location, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const base = location === "" ? "node_modules" : `${location}/node_modules`
    const nested = `${base}/${name}`
    const hoisted = `node_modules/${name}`
    if (packages[nested] || packages[hoisted]) continue
    const platform = platformOf(name)
    if (platform === undefined || !/^\d+\.\d+\.\d+/.test(version)) continue
    packages[hoisted] = {
      version,
      cpu: [platform.cpu],
      ...(entry.dev ? { dev: true } : {}),
      ...(platform.libc ? { libc: [platform.libc] } : {}),
      optional: true,
      os: [platform.os]
    }
    added++
  }
}
const sorted = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0))
)
lock.packages = sorted
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`)
console.log(`complete-lock: added ${added} platform entries`)
