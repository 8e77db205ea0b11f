/** Parses Prometheus exposition text into samples (tests and the dashboard check read scrapes with it). */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export const parse = (text: string): Array<Sample> => {
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue
    const match = sampleLine.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? "").matchAll(labelPair)) labels[pair[1]] = pair[2].replace(/\\(.)/g, "$1")
    const raw = match[3]
    samples.push({
      name: match[1],
      labels,
      value: raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw)
    })
  }
  return samples
}

/** Metric family names declared by `# TYPE` lines. */
export const families = (text: string): Map<string, string> => {
  const out = new Map<string, string>()
  for (const line of text.split("\n")) {
    const match = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (match) out.set(match[1], match[2])
  }
  return out
}

/** The value of the one sample matching `name` and every label in `labels` (throws when absent). */
export const value = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}): number => {
  const found = samples.find(
    (sample) => sample.name === name && Object.entries(labels).every(([key, v]) => sample.labels[key] === v)
  )
  if (found === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)}`)
  return found.value
}
