/**
 * Seeded randomness for what must replay the same way from the same seed: the venue simulator's feed, rebalance tie
 * breaks, bench loads and fuzz tests.
 */

/** mulberry32: a small, fast 32-bit generator; returns a function drawing numbers in [0, 1). */
export const prng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
