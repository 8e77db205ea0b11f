// Decimal strings at the edge, integers inside. A `DecimalUnit` is one increment (a tick or a lot)
// such as "0.01" or "0.5"; it converts "100.25" to a count of increments and back, exactly,
// without floating-point arithmetic on fractions.

/** Largest count of ticks or lots the engine accepts (keeps every sum an exact double). */
export const MAX_UNITS = 2 ** 48 - 1

const MAX_SAFE = Number.MAX_SAFE_INTEGER
const POW10: ReadonlyArray<number> = Array.from({ length: 16 }, (_, i) => 10 ** i)

/** One increment (tick or lot) as a decimal: `mantissa * 10^-scale`. */
export class DecimalUnit {
  /** The increment as given, e.g. "0.01". */
  readonly text: string
  /** Integer mantissa of the increment: "0.05" -> 5. */
  readonly mantissa: number
  /** Decimal places of the increment: "0.05" -> 2; output is printed with this many. */
  readonly scale: number

  constructor(text: string) {
    const parsed = parseDecimal(text)
    if (parsed === undefined || parsed.mantissa === 0) {
      throw new RangeError(`increment must be a positive decimal, got "${text}"`)
    }
    if (parsed.scale > 15) throw new RangeError(`increment "${text}" has more than 15 decimal places`)
    this.text = text
    this.mantissa = parsed.mantissa
    this.scale = parsed.scale
  }

  /**
   * Number of increments in `s` (a decimal string, or a finite JSON number), or -1 when `s` is not a
   * plain positive decimal, is not an exact multiple of the increment, or exceeds MAX_UNITS.
   * Zero returns -1 too: no price or quantity may be zero.
   */
  toUnits(s: string | number): number {
    if (typeof s === "number") {
      if (!Number.isFinite(s) || s <= 0) return -1
      s = String(s)
      if (s.indexOf("e") !== -1) return -1
    }
    const len = s.length
    if (len === 0 || len > 64) return -1
    const unitScale = this.scale
    let mant = 0
    let scale = 0
    let pendingZeros = 0 // zeros after the point not yet applied: trailing zeros never overflow
    let dot = -1
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i)
      if (c === 46) {
        if (dot !== -1 || i === 0 || i === len - 1) return -1
        dot = i
        continue
      }
      if (c < 48 || c > 57) return -1
      const d = c - 48
      if (dot === -1) {
        mant = mant * 10 + d
        if (mant > MAX_SAFE) return -1
      } else if (d === 0) {
        pendingZeros++
      } else {
        scale += pendingZeros + 1
        if (scale > unitScale) return -1
        mant = mant * POW10[pendingZeros + 1] + d
        pendingZeros = 0
        if (mant > MAX_SAFE) return -1
      }
    }
    const scaled = mant * POW10[unitScale - scale]
    if (scaled > MAX_SAFE) return -1
    const units = scaled / this.mantissa
    if (units !== Math.floor(units) || units < 1 || units > MAX_UNITS) return -1
    return units
  }

  /** Decimal string of `units` increments, printed with the increment's decimal places: 10000 ticks of "0.01" -> "100.00". */
  format(units: number): string {
    const digits = String(units * this.mantissa)
    const scale = this.scale
    if (scale === 0) return digits
    const padded = digits.length > scale ? digits : "0".repeat(scale + 1 - digits.length) + digits
    const cut = padded.length - scale
    return padded.slice(0, cut) + "." + padded.slice(cut)
  }
}

/** Parses a plain non-negative decimal ("12", "0.050") into mantissa and scale with trailing zeros removed. */
const parseDecimal = (text: string): { mantissa: number; scale: number } | undefined => {
  if (!/^\d+(\.\d+)?$/.test(text)) return undefined
  const dot = text.indexOf(".")
  let intPart = dot === -1 ? text : text.slice(0, dot)
  let frac = dot === -1 ? "" : text.slice(dot + 1)
  frac = frac.replace(/0+$/, "")
  intPart = intPart.replace(/^0+(?=\d)/, "")
  const mantissa = Number(intPart + frac)
  if (!Number.isSafeInteger(mantissa)) return undefined
  return { mantissa, scale: frac.length }
}
