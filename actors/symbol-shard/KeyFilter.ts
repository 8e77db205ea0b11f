// A Bloom filter of the idempotency keys a shard has forgotten: fixed memory, no false negatives. A key it may
// hold is checked against the `orders` table (places) or refused (cancel/move request ids), so forgetting a key
// can never let a retry apply twice. Pure: no Effect imports; the bits travel in the shard snapshot.

const HASHES = 4

export interface KeyFilterJson {
  readonly bits: number
  readonly count: number
  readonly data: string
}

export class KeyFilter {
  /** Size in bits, a power of two. */
  readonly size: number
  /** Keys added so far (the false-positive rate grows with it). */
  count = 0
  private readonly mask: number
  // Allocated with the first key: a shard that never forgets costs nothing.
  private words: Uint32Array | undefined = undefined

  /** `bits` is rounded up to a power of two, at least 1024. */
  constructor(bits: number) {
    let size = 1024
    while (size < bits && size < 2 ** 31) size *= 2
    this.size = size
    this.mask = size - 1
  }

  add(key: string): void {
    if (this.words === undefined) this.words = new Uint32Array(this.size >>> 5)
    const words = this.words
    const h1 = fnv1a(key)
    const h2 = second(key) | 1
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask
      words[bit >>> 5] |= 1 << (bit & 31)
    }
    this.count++
  }

  /** False: the key was never added. True: it may have been. */
  has(key: string): boolean {
    const words = this.words
    if (words === undefined) return false
    const h1 = fnv1a(key)
    const h2 = second(key) | 1
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask
      if ((words[bit >>> 5] & (1 << (bit & 31))) === 0) return false
    }
    return true
  }

  /** The filter for a snapshot; undefined while empty. */
  toJson(): KeyFilterJson | undefined {
    const words = this.words
    if (words === undefined) return undefined
    return {
      bits: this.size,
      count: this.count,
      data: Buffer.from(words.buffer, words.byteOffset, words.byteLength).toString("base64")
    }
  }

  /** Restores `toJson()`; its size wins over the configured one (a Bloom filter cannot be resized). */
  static fromJson(json: KeyFilterJson | undefined | null, bits: number): KeyFilter {
    if (json === undefined || json === null) return new KeyFilter(bits)
    const filter = new KeyFilter(json.bits)
    const bytes = Buffer.from(json.data, "base64")
    if (bytes.byteLength !== filter.size >>> 3) throw new Error("shard snapshot: key filter size mismatch")
    const words = new Uint32Array(filter.size >>> 5)
    new Uint8Array(words.buffer).set(bytes)
    filter.words = words
    filter.count = json.count
    return filter
  }
}

const fnv1a = (key: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h >>> 0
}

// An independent second hash (murmur3's finaliser over a multiplicative string hash) for double hashing.
const second = (key: string): number => {
  let h = 0x9747b28c
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995) ^ (h >>> 15)
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
