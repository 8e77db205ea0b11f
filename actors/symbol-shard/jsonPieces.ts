// JSON text of a large value in pieces, so a driver can yield to the event loop between them. A shard snapshot of a
// few hundred thousand resting orders encoded at once held the runner's loop for hundreds of milliseconds.

/**
 * The JSON text of `value`, as `JSON.stringify(value)` gives it, in pieces: an array longer than `slice` goes out
 * `slice` elements at a time, and an object holding such an array one property at a time around it; anything else
 * is one piece. For plain data (no `toJSON`, no cycles), as the shard snapshot is.
 */
export function* jsonPieces(value: unknown, slice = 2048): Generator<string, void, undefined> {
  if (Array.isArray(value)) {
    if (value.length <= slice) {
      yield JSON.stringify(value)
      return
    }
    for (let from = 0; from < value.length; from += slice) {
      const text = JSON.stringify(value.slice(from, from + slice))
      // The slice's own brackets go: the pieces join into one array.
      yield `${from === 0 ? "[" : ","}${text.slice(1, -1)}`
    }
    yield "]"
    return
  }
  if (value === null || typeof value !== "object" || !holdsLarge(value, slice)) {
    yield JSON.stringify(value)
    return
  }
  let first = true
  for (const [key, entry] of Object.entries(value)) {
    // As JSON.stringify does: properties without a JSON value are left out.
    if (entry === undefined || typeof entry === "function" || typeof entry === "symbol") continue
    yield `${first ? "{" : ","}${JSON.stringify(key)}:`
    first = false
    yield* jsonPieces(entry, slice)
  }
  yield first ? "{}" : "}"
}

/** Whether `value` holds, at any depth of plain objects, an array longer than `slice`. */
const holdsLarge = (value: object, slice: number): boolean => {
  for (const entry of Object.values(value)) {
    if (Array.isArray(entry)) {
      if (entry.length > slice) return true
    } else if (entry !== null && typeof entry === "object" && holdsLarge(entry, slice)) return true
  }
  return false
}
