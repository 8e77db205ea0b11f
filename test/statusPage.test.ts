import { existsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type Browser, chromium, type Page } from "playwright-core"
import { type Cluster, rawRpc, rpcRequest, startCluster } from "./harness.ts"

const chromiumPath = "/usr/bin/chromium"
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

let cluster: Cluster
let browser: Browser
let page: Page

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)`)
  }
  browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, timeout: 30_000 })
  cluster = await startCluster(2, { label: "statuspage" })
  page = await browser.newPage({ viewport: { width: 1200, height: 1000 } })
}, 120_000)
afterAll(async () => {
  await browser?.close()
  await cluster?.stop()
})

const text = async (selector: string) => (await page.locator(selector).textContent()) ?? ""

describe("status page in headless Chromium", () => {
  it("shows runners, shards, entities, live request rate, and a runner that disappears", async () => {
    const [first, second] = cluster.runners
    await page.goto(`${first.url}/`)
    assert.strictEqual(await page.title(), "Tessera status")

    // both runners healthy, all shards held between them
    await page.waitForFunction(() => document.querySelectorAll("#runners tbody tr td.ok").length === 2, null, {
      timeout: 20_000
    })
    const rows = await page.locator("#runners tbody tr").allTextContents()
    assert.strictEqual(rows.length, 2)
    assert.isTrue(rows.some((row) => row.includes(`127.0.0.1:${second.runnerPort}`)))
    await page.waitForFunction(() => document.getElementById("shards-total")?.textContent === "300 / 300", null, {
      timeout: 20_000
    })
    assert.match(await text("#shards"), /^\d+(-\d+)?(,\d+(-\d+)?)*$/)
    // the hosted modules, with their entity types, and the graph module's own tile
    const modules = await page.locator("#modules tbody tr").allTextContents()
    assert.isTrue(
      modules.some((row) => row.includes("symbol-shard") && row.includes("SymbolShard")),
      modules.join("|")
    )
    assert.include(await text("#module-tiles"), "Graph traffic across zones")

    // traffic through this gateway shows up as a request rate, a latency and Probe entities
    let sending = true
    const traffic = (async () => {
      let i = 0
      while (sending) {
        await rawRpc(first.url, rpcRequest(String(i), "Probe.Where", { entityId: `page-${i % 8}`, payload: {} }))
        i++
      }
    })()
    try {
      await page.waitForFunction(() => Number(document.getElementById("rps")?.textContent) > 0, null, {
        timeout: 20_000
      })
      await page.waitForFunction(() => /Probe/.test(document.getElementById("entities")?.textContent ?? ""), null, {
        timeout: 20_000
      })
      assert.match(await text("#latency"), /(µs|ms|s) \/ .*(µs|ms|s)/)
    } finally {
      sending = false
      await traffic
    }
    const screenshot = join(tmpdir(), `tessera-status-${process.pid}.png`)
    await page.screenshot({ path: screenshot, fullPage: true })
    console.log(`status page screenshot: ${screenshot}`)

    // kill -9 the other runner: the page reports it silent, then lists it under recent failovers
    await cluster.kill9(second)
    await page.waitForFunction(
      (port) => (document.getElementById("failovers")?.textContent ?? "").includes(`127.0.0.1:${port}`),
      second.runnerPort,
      { timeout: 30_000 }
    )
    assert.include(await text("#runners-healthy"), "1 / 2")
    await page.screenshot({ path: screenshot.replace(".png", "-failover.png"), fullPage: true })
    assert.strictEqual(await text("#error"), "")
  })
})
