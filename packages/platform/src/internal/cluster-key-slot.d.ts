// cluster-key-slot ships no types: its default export is the slot function.
declare module "cluster-key-slot" {
  const calculateSlot: ((key: string | Uint8Array) => number) & {
    readonly generateMulti: (keys: ReadonlyArray<string | Uint8Array>) => number
  }
  export default calculateSlot
}
