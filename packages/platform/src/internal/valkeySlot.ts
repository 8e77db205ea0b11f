/**
 * Cluster slots of keys (CRC16 of the key or its `{hash tag}`, mod 16384), from `cluster-key-slot`, the table
 * ioredis itself routes by, so our split of multi-key commands always agrees with the client's.
 */
import calculateSlot from "cluster-key-slot"

/** The cluster slot (0..16383) of a key, as the server computes it (over the key's UTF-8 bytes). */
export const keySlot = (key: string): number => calculateSlot(key)

/** Positions of `keys` grouped by slot, in order of first appearance; one group when they share a slot. */
export const groupBySlot = (
  keys: ReadonlyArray<string>
): Array<{ readonly slot: number; readonly positions: Array<number> }> => {
  const groups: Array<{ readonly slot: number; readonly positions: Array<number> }> = []
  const bySlot = new Map<number, Array<number>>()
  for (let i = 0; i < keys.length; i++) {
    const slot = calculateSlot(keys[i])
    let positions = bySlot.get(slot)
    if (positions === undefined) {
      positions = []
      bySlot.set(slot, positions)
      groups.push({ slot, positions })
    }
    positions.push(i)
  }
  return groups
}
