import { assert, describe, it } from "@effect/vitest"
import { advanceWhile, progress } from "./progress.ts"

const recorder = (isTTY: boolean) => {
  const writes: Array<string> = []
  return { writes, stream: { isTTY, columns: 100, write: (text: string) => writes.push(text) } }
}

describe("progress", () => {
  it("prints plain periodic lines when not on a TTY", () => {
    const { writes, stream } = recorder(false)
    let clock = 0
    const bar = progress("load", { total: 1000, stream, intervalMs: 1000, unit: "rows", now: () => clock })
    for (let i = 0; i < 1000; i++) {
      clock += 5 // 200 rows/s: one line per simulated second
      bar.tick()
    }
    bar.done()
    assert.strictEqual(writes.length, 5 + 1)
    assert.strictEqual(writes[0], "load: 200/1000 rows 200 rows/s eta 4s (20%)\n")
    assert.isTrue(writes.every((w) => w.endsWith("\n") && !w.includes("\r")))
    assert.strictEqual(writes[5], "load: done, 1000/1000 rows 200 rows/s in 5s\n")
  })

  it("redraws a bar in place on a TTY", () => {
    const { writes, stream } = recorder(true)
    let clock = 0
    const bar = progress("sweep", { total: 4, stream, now: () => clock })
    clock = 150
    bar.tick(2)
    bar.note("4000 ops/s")
    clock = 300
    bar.tick()
    bar.tick()
    bar.done()
    assert.isTrue(writes[0].startsWith("\r\x1b[2Ksweep ["))
    assert.include(writes[0], " 50% 2/4")
    assert.include(writes[1], " 75% 3/4")
    assert.include(writes[1], "4000 ops/s")
    assert.isTrue(writes.at(-1)!.endsWith("\n"))
    assert.include(writes.at(-1)!, "done, 4/4")
  })

  it("shows counts and rate without a total", () => {
    const { writes, stream } = recorder(false)
    let clock = 0
    const bar = progress("replay", { stream, intervalMs: 1000, now: () => clock })
    clock = 1000
    bar.set(25_000)
    assert.strictEqual(writes[0], "replay: 25.0k 25.0k/s\n")
  })

  it("with afterMs writes nothing for a short run and starts reporting once the time has passed", () => {
    const quiet = recorder(false)
    let clock = 0
    const short = progress("replay", { stream: quiet.stream, intervalMs: 1000, afterMs: 5000, now: () => clock })
    for (let i = 0; i < 40; i++) {
      clock += 100
      short.tick(10)
    }
    short.done()
    assert.deepStrictEqual(quiet.writes, [])

    const long = recorder(false)
    clock = 0
    const bar = progress("replay", { stream: long.stream, intervalMs: 1000, afterMs: 5000, now: () => clock })
    for (let i = 0; i < 70; i++) {
      clock += 100
      bar.tick(10)
    }
    bar.done()
    assert.strictEqual(long.writes.length, 4, long.writes.join(""))
    assert.strictEqual(long.writes[0], "replay: 500 100/s\n")
    assert.strictEqual(long.writes[2], "replay: 700 100/s\n")
    assert.include(long.writes[3], "replay: done, 700")
  })

  it("clear erases a drawn bar on a TTY only, so log lines do not run into it", () => {
    const tty = recorder(true)
    let clock = 0
    const bar = progress("sweep", { total: 4, stream: tty.stream, now: () => clock })
    bar.clear()
    assert.deepStrictEqual(tty.writes, [])
    clock = 200
    bar.tick()
    bar.clear()
    bar.clear()
    assert.strictEqual(tty.writes.length, 2)
    assert.strictEqual(tty.writes[1], "\r\x1b[2K")

    const plain = recorder(false)
    const lines = progress("sweep", { total: 4, stream: plain.stream, intervalMs: 100, now: () => clock })
    clock = 400
    lines.tick()
    lines.clear()
    assert.strictEqual(plain.writes.length, 1)
  })

  it("advanceWhile ends the timed phase at from + span whatever the work took", async () => {
    const { writes, stream } = recorder(false)
    const bar = progress("sweep", { total: 20, stream, unit: "s" })
    const result = await advanceWhile(bar, 10, 5, async () => "ok")
    assert.strictEqual(result, "ok")
    bar.done()
    assert.match(writes.at(-1)!, /^sweep: done, 15\/20 s /)
  })
})
