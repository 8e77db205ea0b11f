import { assert, describe, it } from "@effect/vitest"
import * as Throttle from "./Throttle.ts"

/** Sends `n` requests at `now`, the gateway accepting each `accept(i)`; how many the throttle let through. */
const send = (throttle: Throttle.Throttle, now: number, n: number, accept: (i: number) => boolean) => {
  let sent = 0
  for (let i = 0; i < n; i++) {
    if (!throttle.admit(now)) continue
    sent++
    if (accept(i)) throttle.accepted(now)
  }
  return sent
}

describe("client back-off (adaptive throttle)", () => {
  it("sends everything while the gateway accepts everything", () => {
    const throttle = Throttle.make({}, () => 0)
    assert.strictEqual(
      send(throttle, 1000, 500, () => true),
      500
    )
    assert.strictEqual(throttle.rejectShare(1000), 0)
  })

  it("against a gateway that accepts a fixed rate, sends about k times that rate", () => {
    let draw = 0
    // Evenly spread draws, so the share refused is the share computed.
    const throttle = Throttle.make({ k: 2, windowMs: 2000 }, () => (draw = (draw + 0.618034) % 1))
    // Every 10 ms the client has 20 requests and the gateway accepts 5 of them, refusing the rest Overloaded.
    const sentPerTick: Array<number> = []
    for (let t = 0; t < 4000; t += 10) {
      let room = 5
      sentPerTick.push(send(throttle, t, 20, () => room-- > 0))
    }
    const last = sentPerTick.slice(-100)
    const mean = last.reduce((a, b) => a + b, 0) / last.length
    assert.isAbove(mean, 7, "about k = 2 times the 5 accepted per tick")
    assert.isBelow(mean, 14)
    assert.isAtLeast(sentPerTick[0], 10, "nothing is held back before the first refusals")
  })

  it("refuses nearly everything while the gateway refuses everything, and nothing once the window has passed", () => {
    const throttle = Throttle.make({ k: 2, windowMs: 2000 }, () => 0.5)
    send(throttle, 1000, 5, () => false)
    assert.isAbove(throttle.rejectShare(1000), 0.8)
    assert.strictEqual(
      send(throttle, 1500, 100, () => false),
      0,
      "a share over one half refuses every draw of 0.5"
    )
    assert.strictEqual(throttle.rejectShare(3600), 0, "counts older than the window are dropped")
    assert.strictEqual(
      send(throttle, 3600, 10, () => true),
      10
    )
  })

  it("lets more requests through as the gateway accepts again", () => {
    let draw = 0
    const throttle = Throttle.make({ k: 2, windowMs: 1000 }, () => (draw = (draw + 0.618034) % 1))
    send(throttle, 0, 100, () => false)
    const before = throttle.rejectShare(100)
    // The gateway accepts again: what is let through is accepted and lowers the share, and the refusals age out.
    send(throttle, 100, 200, () => true)
    assert.isBelow(throttle.rejectShare(100), before)
    let through = 0
    // Within two windows of the last refusal nothing is held back.
    for (let t = 200; t < 4000; t += 10) through += send(throttle, t, 5, () => true)
    assert.strictEqual(throttle.rejectShare(4000), 0)
    assert.strictEqual(
      send(throttle, 4000, 50, () => true),
      50
    )
    assert.isAbove(through, 0)
  })
})
