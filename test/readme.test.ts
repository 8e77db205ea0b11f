// The README's "Write your own actor" quotes the example's files whole: each quoted block must be the file as it is
// (the files themselves are compiled by `npm run typecheck` and run by test/counter-example.test.ts).
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { repoRoot } from "./harness.ts"

const readme = readFileSync(join(repoRoot, "README.md"), "utf8")
const quoted = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)\n```/g)].map(
  (match) => [match[1], match[2]] as const
)

describe("README", () => {
  it("quotes the counter example's protocol, entity, module, entry, client and test", () => {
    assert.deepStrictEqual(
      quoted.map(([path]) => path),
      ["protocol.ts", "entity.ts", "module.ts", "main.ts", "client.ts", "counter.test.ts"].map(
        (file) => `examples/counter/${file}`
      )
    )
  })

  for (const [path, text] of quoted) {
    it(`quotes ${path} as it is`, () => {
      assert.strictEqual(text, readFileSync(join(repoRoot, path), "utf8").trimEnd())
    })
  }
})
