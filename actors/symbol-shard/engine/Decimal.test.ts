import { assert, describe, it } from "@effect/vitest"
import { DecimalUnit, MAX_UNITS } from "./Decimal.ts"

describe("DecimalUnit", () => {
  it("converts decimal strings to whole ticks", () => {
    const tick = new DecimalUnit("0.01")
    assert.strictEqual(tick.toUnits("100.00"), 10000)
    assert.strictEqual(tick.toUnits("100"), 10000)
    assert.strictEqual(tick.toUnits("100.5"), 10050)
    assert.strictEqual(tick.toUnits("0.01"), 1)
    assert.strictEqual(tick.toUnits("007.10"), 710)
    assert.strictEqual(tick.toUnits("1.000000000000000000000000"), 100)
    assert.strictEqual(tick.toUnits(100.25), 10025)
  })

  it("rejects what is not a positive multiple of the tick", () => {
    const tick = new DecimalUnit("0.01")
    for (const bad of ["100.001", "0", "0.00", "-1", "+1", "1e2", ".5", "5.", "1.2.3", "abc", "", " 1", "1,5"]) {
      assert.strictEqual(tick.toUnits(bad), -1, bad)
    }
    assert.strictEqual(tick.toUnits(Number.NaN), -1)
    assert.strictEqual(tick.toUnits(-3), -1)
    assert.strictEqual(tick.toUnits(1e-7), -1)
    assert.strictEqual(tick.toUnits("99999999999999999999"), -1)
    assert.strictEqual(new DecimalUnit("1").toUnits(String(MAX_UNITS + 1)), -1)
    assert.strictEqual(new DecimalUnit("1").toUnits(String(MAX_UNITS)), MAX_UNITS)
  })

  it("handles ticks that are not powers of ten", () => {
    const tick = new DecimalUnit("0.05")
    assert.strictEqual(tick.toUnits("100.05"), 2001)
    assert.strictEqual(tick.toUnits("100.02"), -1)
    assert.strictEqual(tick.format(2001), "100.05")
    const ten = new DecimalUnit("10")
    assert.strictEqual(ten.toUnits("120"), 12)
    assert.strictEqual(ten.toUnits("125"), -1)
    assert.strictEqual(ten.format(12), "120")
  })

  it("formats with the increment's decimal places", () => {
    assert.strictEqual(new DecimalUnit("0.01").format(10000), "100.00")
    assert.strictEqual(new DecimalUnit("0.01").format(5), "0.05")
    assert.strictEqual(new DecimalUnit("0.5").format(3), "1.5")
    assert.strictEqual(new DecimalUnit("1").format(3), "3")
    assert.strictEqual(new DecimalUnit("0.001").format(1500), "1.500")
    assert.strictEqual(new DecimalUnit("0.010").scale, 2)
  })

  it("refuses an invalid increment", () => {
    for (const bad of ["0", "-1", "abc", "", "0.000"]) assert.throws(() => new DecimalUnit(bad), RangeError)
  })
})
