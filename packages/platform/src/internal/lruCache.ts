/**
 * A small least-recently-used cache over `Map`'s insertion order: a hit moves the entry to the end, an insert past
 * `capacity` drops the first. Used for prepared statements keyed by SQL text, where the working set is the few dozen
 * statements a storage layer repeats.
 */
export class LruCache<K, V> {
  readonly capacity: number
  private readonly entries = new Map<K, V>()

  constructor(capacity: number) {
    this.capacity = Math.max(0, Math.floor(capacity))
  }

  get size(): number {
    return this.entries.size
  }

  get(key: K): V | undefined {
    const value = this.entries.get(key)
    if (value !== undefined) {
      this.entries.delete(key)
      this.entries.set(key, value)
    }
    return value
  }

  /** Stores `value` and returns the evicted value, if any. */
  set(key: K, value: V): V | undefined {
    if (this.capacity === 0) return value
    this.entries.delete(key)
    this.entries.set(key, value)
    if (this.entries.size <= this.capacity) return undefined
    const oldest = this.entries.keys().next().value as K
    const evicted = this.entries.get(oldest)
    this.entries.delete(oldest)
    return evicted
  }

  clear(): void {
    this.entries.clear()
  }
}
