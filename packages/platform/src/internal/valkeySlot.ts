/**
 * Redis Cluster key slots (CRC16-XMODEM of the key, or of its first non-empty `{hash tag}`, modulo 16384), so that
 * the cluster client can split multi-key commands and group pipelines by slot. No Effect imports.
 *
 * Not `cluster-key-slot` (what ioredis routes by): it disagrees with the server when the first `{` closes at once
 * and a later tag follows (`x{}y{z}`: server 15453, cluster-key-slot 3559), which would group keys the server
 * then refuses as CROSSSLOT. The test compares every case with the server's CLUSTER KEYSLOT.
 */
import { Buffer } from "node:buffer"

const table = new Uint16Array(256)
for (let i = 0; i < 256; i++) {
  let crc = i << 8
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  table[i] = crc
}

const crc16 = (bytes: Uint8Array, start: number, end: number): number => {
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ bytes[i]) & 0xff]
  return crc
}

const OPEN = 0x7b // {
const CLOSE = 0x7d // }

/** The cluster slot (0..16383) of a key, as the server computes it (over the key's UTF-8 bytes). */
export const keySlot = (key: string): number => {
  // Keys are nearly always ASCII: hash the char codes without encoding.
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0x7f) return bytesSlot(Buffer.from(key, "utf8"))
  const open = key.indexOf("{")
  if (open !== -1) {
    const close = key.indexOf("}", open + 1)
    // `{}` (an empty tag) does not count: the whole key is hashed.
    if (close > open + 1) return asciiCrc16(key, open + 1, close) & 0x3fff
  }
  return asciiCrc16(key, 0, key.length) & 0x3fff
}

const asciiCrc16 = (key: string, start: number, end: number): number => {
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ key.charCodeAt(i)) & 0xff]
  return crc
}

const bytesSlot = (bytes: Uint8Array): number => {
  const open = bytes.indexOf(OPEN)
  if (open !== -1) {
    const close = bytes.indexOf(CLOSE, open + 1)
    if (close > open + 1) return crc16(bytes, open + 1, close) & 0x3fff
  }
  return crc16(bytes, 0, bytes.length) & 0x3fff
}

/** Positions of `keys` grouped by slot, in order of first appearance; one group when they share a slot. */
export const groupBySlot = (
  keys: ReadonlyArray<string>
): Array<{ readonly slot: number; readonly positions: Array<number> }> => {
  const groups: Array<{ readonly slot: number; readonly positions: Array<number> }> = []
  const bySlot = new Map<number, Array<number>>()
  for (let i = 0; i < keys.length; i++) {
    const slot = keySlot(keys[i])
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
