import { createReadStream, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Readable, Writable } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import { replayCommand } from "./replay.ts"

const sink = () => {
  const chunks: Array<string> = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk))
      cb()
    }
  })
  return { stream, text: () => chunks.join("") }
}

/** Runs replay over `input` (string or chunks, split as given) and collects the output. */
const replay = async (input: string | Array<string | Buffer>, argv: Array<string> = []) => {
  const out = sink()
  const err = sink()
  const code = await replayCommand(argv, {
    stdin: Readable.from(typeof input === "string" ? [Buffer.from(input)] : input),
    stdout: out.stream,
    stderr: err.stream
  })
  return {
    code,
    stdout: out.text(),
    stderr: err.text(),
    lines: out
      .text()
      .split("\n")
      .filter((l) => l !== "")
  }
}

const jsonl = (...cmds: Array<unknown>) =>
  cmds.map((c) => (typeof c === "string" ? c : JSON.stringify(c))).join("\n") + "\n"

describe("tessera replay", () => {
  it("follows the DESIGN §3.1 format and event order", async () => {
    const input = [
      '{"op":"place","id":"o1","account":"a1","side":"buy","type":"limit","price":"100.00","qty":"5","tif":"GTC"}',
      '{"op":"place","id":"o2","side":"sell","type":"market","qty":"3"}',
      '{"op":"place","id":"o3","side":"sell","type":"limit","price":"101","qty":"1","postOnly":true}',
      '{"op":"book","depth":5}',
      '{"op":"place","id":"o4","side":"buy","type":"limit","price":"101","qty":"1","postOnly":true}',
      '{"op":"move","id":"o1","price":"101.00"}',
      '{"op":"cancel","id":"o1"}',
      '{"op":"cancel","id":"o1"}',
      '{"op":"place","id":"o1","side":"buy","price":"99","qty":"1"}',
      '{"op":"place","id":"o9","side":"buy","price":"99.999","qty":"1"}',
      '{"op":"place","id":"o10","side":"buy","price":"99","qty":"1.5"}',
      '{"op":"move","id":"o3","price":"102","qty":"4"}',
      '{"op":"place","id":"o11","side":"buy","price":"103","qty":"10","tif":"FOK"}',
      '{"op":"place","id":"o12","side":"buy","price":"103","qty":"10","tif":"IOC"}',
      '{"op":"book"}'
    ].join("\n")
    const { code, lines, stderr } = await replay(input + "\n")
    assert.strictEqual(code, 0)
    assert.strictEqual(stderr, "")
    assert.deepStrictEqual(lines, [
      '{"ev":"accepted","id":"o1"}',
      '{"ev":"accepted","id":"o2"}',
      '{"ev":"trade","maker":"o1","taker":"o2","price":"100.00","qty":"3"}',
      '{"ev":"done","id":"o2","reason":"filled"}',
      '{"ev":"accepted","id":"o3"}',
      '{"ev":"book","bids":[["100.00","2"]],"asks":[["101.00","1"]]}',
      '{"ev":"rejected","id":"o4","reason":"would_cross"}',
      '{"ev":"moved","id":"o1"}',
      '{"ev":"trade","maker":"o3","taker":"o1","price":"101.00","qty":"1"}',
      '{"ev":"done","id":"o3","reason":"filled"}',
      '{"ev":"done","id":"o1","reason":"canceled"}',
      '{"ev":"rejected","id":"o1","reason":"unknown_order"}',
      '{"ev":"rejected","id":"o1","reason":"duplicate_id"}',
      '{"ev":"rejected","id":"o9","reason":"invalid_price"}',
      '{"ev":"rejected","id":"o10","reason":"invalid_qty"}',
      '{"ev":"rejected","id":"o3","reason":"unknown_order"}',
      '{"ev":"accepted","id":"o11"}',
      '{"ev":"done","id":"o11","reason":"killed"}',
      '{"ev":"accepted","id":"o12"}',
      '{"ev":"done","id":"o12","reason":"expired"}',
      '{"ev":"book","bids":[],"asks":[]}'
    ])
  })

  it("reports malformed lines on stderr with their number and goes on", async () => {
    const input = jsonl(
      '{"op":"place","id":"a","side":"sell","price":"10","qty":"2"}',
      "not json",
      "",
      "[1,2]",
      '{"op":"explode","id":"x"}',
      '{"id":"x"}',
      '{"op":"place","side":"buy","price":"10","qty":"1"}',
      '{"op":"place","id":"b","side":"up","price":"10","qty":"1"}',
      '{"op":"place","id":"b","side":"buy","type":"stop","price":"10","qty":"1"}',
      '{"op":"place","id":"b","side":"buy","price":"10","qty":"1","tif":"DAY"}',
      '{"op":"place","id":"b","side":"buy","price":"10","qty":"1","postOnly":"yes"}',
      '{"op":"cancel"}',
      '{"op":"move","id":"a"}',
      '{"op":"book","depth":-1}',
      '{"op":"place","id":"b","side":"buy","price":"10","qty":"1"}'
    )
    const { code, lines, stderr } = await replay(input)
    assert.strictEqual(code, 0)
    assert.deepStrictEqual(
      stderr.split("\n").filter((l) => l !== ""),
      [
        "line 2: invalid JSON",
        "line 4: expected a JSON object",
        'line 5: unknown op "explode"',
        'line 6: missing "op"',
        'line 7: place needs a non-empty string "id"',
        'line 8: "side" must be "buy" or "sell"',
        'line 9: "type" must be "limit" or "market"',
        'line 10: "tif" must be "GTC", "IOC" or "FOK"',
        'line 11: "postOnly" must be a boolean',
        'line 12: cancel needs a non-empty string "id"',
        'line 13: move needs "price" and/or "qty"',
        'line 14: "depth" must be a non-negative integer'
      ]
    )
    assert.deepStrictEqual(lines, [
      '{"ev":"accepted","id":"a"}',
      '{"ev":"accepted","id":"b"}',
      '{"ev":"trade","maker":"a","taker":"b","price":"10.00","qty":"1"}',
      '{"ev":"done","id":"b","reason":"filled"}'
    ])
  })

  it("handles CRLF, a last line without newline, and lines split across chunks", async () => {
    const text =
      '{"op":"place","id":"a","side":"sell","price":"10","qty":"2"}\r\n{"op":"place","id":"b","side":"buy","price":"10","qty":"1"}'
    const chunks = [Buffer.from(text.slice(0, 7)), Buffer.from(text.slice(7, 70)), Buffer.from(text.slice(70))]
    const { lines, stderr } = await replay(chunks)
    assert.strictEqual(stderr, "")
    assert.strictEqual(lines.length, 4)
    assert.strictEqual(lines[2], '{"ev":"trade","maker":"a","taker":"b","price":"10.00","qty":"1"}')
  })

  it("decodes multi-byte characters split across chunks and escapes ids", async () => {
    const text = jsonl({ op: "place", id: 'ü"é\\', side: "buy", price: "1", qty: "1" })
    const bytes = Buffer.from(text)
    const cut = bytes.indexOf(Buffer.from("ü")) + 1
    const { lines } = await replay([bytes.subarray(0, cut), bytes.subarray(cut)])
    assert.deepStrictEqual(
      lines.map((l) => JSON.parse(l)),
      [{ ev: "accepted", id: 'ü"é\\' }]
    )
  })

  it("prints prices with the tick's decimals and quantities with the lot's", async () => {
    const input = jsonl(
      { op: "place", id: "a", side: "sell", price: "10", qty: "0.25" },
      { op: "place", id: "b", side: "sell", price: "10.5", qty: "1" },
      { op: "place", id: "c", side: "buy", price: "10.25", qty: "1" },
      { op: "place", id: "d", side: "buy", price: 11, qty: 2 },
      { op: "book", depth: 1 }
    )
    const { lines } = await replay(input, ["--tick", "0.5", "--lot=0.05"])
    assert.deepStrictEqual(lines, [
      '{"ev":"accepted","id":"a"}',
      '{"ev":"accepted","id":"b"}',
      '{"ev":"rejected","id":"c","reason":"invalid_price"}',
      '{"ev":"accepted","id":"d"}',
      '{"ev":"trade","maker":"a","taker":"d","price":"10.0","qty":"0.25"}',
      '{"ev":"done","id":"a","reason":"filled"}',
      '{"ev":"trade","maker":"b","taker":"d","price":"10.5","qty":"1.00"}',
      '{"ev":"done","id":"b","reason":"filled"}',
      '{"ev":"book","bids":[["11.0","0.75"]],"asks":[]}'
    ])
  })

  it("enforces --min-qty and --max-qty", async () => {
    const input = jsonl(
      { op: "place", id: "a", side: "sell", price: "10", qty: "1" },
      { op: "place", id: "b", side: "sell", price: "10", qty: "11" },
      { op: "place", id: "c", side: "sell", price: "10", qty: "5" }
    )
    const { lines } = await replay(input, ["--min-qty", "2", "--max-qty", "10"])
    assert.deepStrictEqual(lines, [
      '{"ev":"rejected","id":"a","reason":"invalid_qty"}',
      '{"ev":"rejected","id":"b","reason":"invalid_qty"}',
      '{"ev":"accepted","id":"c"}'
    ])
  })

  it("--help prints usage and exits 0; bad arguments exit 2 with a message", async () => {
    const help = await replay("", ["--help"])
    assert.strictEqual(help.code, 0)
    assert.include(help.stdout, "usage: tessera replay")
    for (const argv of [["--tick", "0"], ["--tick"], ["--lot", "abc"], ["--bogus"], ["extra"], ["--min-qty", "0.5"]]) {
      const r = await replay("", argv)
      assert.strictEqual(r.code, 2, argv.join(" "))
      assert.match(r.stderr, /^tessera replay: /, argv.join(" "))
      assert.strictEqual(r.stdout, "")
    }
  })

  it("streams a large input in order", async () => {
    const n = 50_000
    const cmds: Array<string> = []
    for (let i = 0; i < n; i++) {
      const side = i % 2 === 0 ? "sell" : "buy"
      cmds.push(`{"op":"place","id":"o${i}","side":"${side}","price":"${100 + (i % 7)}","qty":"1"}`)
    }
    const { code, lines, stderr } = await replay(cmds.join("\n"))
    assert.strictEqual(code, 0)
    assert.strictEqual(stderr, "")
    assert.strictEqual(lines[0], '{"ev":"accepted","id":"o0"}')
    assert.strictEqual(lines.filter((l) => l.startsWith('{"ev":"accepted"')).length, n)
    const trades = lines.filter((l) => l.startsWith('{"ev":"trade"')).length
    assert.isAbove(trades, 0)
    assert.strictEqual(lines.length, n + 3 * trades + lines.filter((l) => l.includes('"expired"')).length)
  })

  it("shows progress on stderr only (bytes of a file on stdin, lines of a pipe), never on stdout", async () => {
    const input = jsonl(
      { op: "place", id: "a", side: "sell", price: "100", qty: "2" },
      { op: "place", id: "b", side: "buy", price: "100", qty: "1" },
      "not json"
    )
    const plain = await replay(input)
    const dir = mkdtempSync(join(tmpdir(), "replay-progress-"))
    try {
      const file = join(dir, "commands.jsonl")
      writeFileSync(file, input)
      const out = sink()
      const err = sink()
      const code = await replayCommand([], {
        stdin: createReadStream("", { fd: openSync(file, "r") }), // like process.stdin redirected from a file
        stdout: out.stream,
        stderr: err.stream,
        progressAfterMs: 0
      })
      assert.strictEqual(code, 0)
      assert.strictEqual(out.text(), plain.stdout)
      const size = Buffer.byteLength(input)
      assert.match(err.text(), new RegExp(`^line 3: invalid JSON\nreplay: done, ${size}/${size} B `))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const piped = sink()
    const pipedErr = sink()
    await replayCommand([], {
      stdin: Readable.from([Buffer.from(input)]),
      stdout: piped.stream,
      stderr: pipedErr.stream,
      progressAfterMs: 0
    })
    assert.strictEqual(piped.text(), plain.stdout)
    assert.match(pipedErr.text(), /replay: done, 3 lines /)
  })
})
