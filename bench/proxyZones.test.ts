import { describe, expect, it } from "vitest"
import { makeLocality, recordRequest, stochasticBlockModel, summarizeLocality } from "./proxyZones.ts"

describe("stochasticBlockModel", () => {
  it("puts the asked share of edges inside communities, deterministically", () => {
    const options = { vertices: 6000, communities: 12, degree: 8, inCommunity: 0.9, seed: 3 }
    const model = stochasticBlockModel(options)
    expect(model.members).toHaveLength(12)
    expect(model.members.every((m) => m.length === 500)).toBe(true)
    expect(model.community[13]).toBe(1)
    let inside = 0
    for (let i = 0; i < options.vertices; i++) {
      for (let j = 0; j < options.degree; j++) {
        const dst = model.targets[i * options.degree + j]
        expect(dst).not.toBe(i)
        if (model.community[dst] === model.community[i]) inside++
      }
    }
    const share = inside / (options.vertices * options.degree)
    expect(share).toBeGreaterThan(0.89)
    expect(share).toBeLessThan(0.91)
    expect(stochasticBlockModel(options).targets).toEqual(model.targets)
    // A model with no community structure: about 1/12 of edges inside.
    const mixed = stochasticBlockModel({ ...options, inCommunity: 1 / 12 })
    let mixedInside = 0
    for (let i = 0; i < mixed.targets.length; i++) {
      if (mixed.community[mixed.targets[i]] === mixed.community[Math.floor(i / 8)]) mixedInside++
    }
    expect(mixedInside / mixed.targets.length).toBeLessThan(0.1)
  })
})

describe("locality accounting", () => {
  it("counts a request as crossed when the client-gateway hop or a data hop crosses, bytes by hop", () => {
    const locality = makeLocality()
    // Same zone everywhere: nothing crosses.
    recordRequest(locality, {
      clientZone: "a",
      gatewayZone: "a",
      wire: 100,
      hops: [{ zone: "a", bytes: 50, replicable: true }],
      replicaReads: false
    })
    // The client talks to another zone's gateway: the wire bytes cross.
    recordRequest(locality, {
      clientZone: "a",
      gatewayZone: "b",
      wire: 100,
      hops: [{ zone: "b", bytes: 50, replicable: true }],
      replicaReads: false
    })
    // A read of another zone's partition, without a replica: its bytes cross.
    recordRequest(locality, {
      clientZone: "a",
      gatewayZone: "a",
      wire: 100,
      hops: [
        { zone: "a", bytes: 30, replicable: true },
        { zone: "c", bytes: 20, replicable: true }
      ],
      replicaReads: false
    })
    // The same read from the zone's replica crosses nothing; a write to another zone's owner still does.
    recordRequest(locality, {
      clientZone: "a",
      gatewayZone: "a",
      wire: 100,
      hops: [{ zone: "c", bytes: 20, replicable: true }],
      replicaReads: true
    })
    recordRequest(locality, {
      clientZone: "a",
      gatewayZone: "a",
      wire: 100,
      hops: [{ zone: "b", bytes: 40, replicable: false }],
      replicaReads: true
    })
    // A partition with no preferred zone is nowhere else.
    recordRequest(locality, {
      clientZone: "a",
      gatewayZone: "a",
      wire: 100,
      hops: [{ zone: null, bytes: 10, replicable: true }],
      replicaReads: false
    })
    const summary = summarizeLocality(locality)
    expect(summary.requests).toBe(6)
    expect(summary.requestShare).toBeCloseTo(3 / 6)
    // Crossed: 100 (wire of request 2) + 20 (request 3) + 40 (request 5) of 600 + 50 + 50 + 50 + 20 + 40 + 10.
    expect(summary.byteShare).toBeCloseTo(160 / 820)
    // Direct reads: 50, 50, 30, 20, 20, 10 -> two of six of another zone's partitions (replica or not).
    expect(summary.directReadShareElsewhere).toBeCloseTo(2 / 6)
  })

  it("reports zero shares for an empty phase", () => {
    expect(summarizeLocality(makeLocality())).toEqual({
      requests: 0,
      requestShare: 0,
      byteShare: 0,
      directReadShareElsewhere: 0
    })
  })
})
