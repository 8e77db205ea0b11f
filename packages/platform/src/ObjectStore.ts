/**
 * ObjectStore: a flat key -> bytes store (the cold tier of graph partitions, the retention archive).
 *
 * - `layerLocal({ root })`: a folder (the embedded default). A put writes a temporary file, fsyncs it, then
 *   renames it over the key, so a crash mid-write leaves the previous object intact.
 * - `layerS3({ bucket, prefix, endpoint })`: S3 or any S3-compatible server (`@aws-sdk/client-s3`). A put is
 *   atomic by S3's semantics (an object appears whole or not at all).
 * - `layerMemory`: in process, for tests of callers.
 */
import { randomBytes } from "node:crypto"
import type { Dirent } from "node:fs"
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises"
import { dirname, join, relative, resolve, sep } from "node:path"
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { Context, Data, Effect, Layer } from "effect"

export class ObjectStoreError extends Data.TaggedError("ObjectStoreError")<{
  readonly operation: "put" | "get" | "delete" | "list" | "open"
  readonly key: string
  readonly message: string
  readonly cause?: unknown
}> {}

export interface ObjectStoreShape {
  /** Where objects live, for metadata and logs (`file:///...`, `s3://bucket/prefix`). */
  readonly location: string
  /** Stores `bytes` under `key`, replacing an earlier object whole. */
  readonly put: (key: string, bytes: Uint8Array) => Effect.Effect<void, ObjectStoreError>
  /** The object, or `null` when there is none. */
  readonly get: (key: string) => Effect.Effect<Uint8Array | null, ObjectStoreError>
  /** Removes the object; removing a missing one is not an error. */
  readonly delete: (key: string) => Effect.Effect<void, ObjectStoreError>
  /** The keys starting with `prefix` (a folder such as `archive/trades/`), sorted. */
  readonly list: (prefix: string) => Effect.Effect<ReadonlyArray<string>, ObjectStoreError>
}

export class ObjectStore extends Context.Service<ObjectStore, ObjectStoreShape>()(
  "tessera/actors/proxy-partition/ObjectStore"
) {}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error))

const checkKey = (key: string): string | undefined =>
  key.length === 0 || key.startsWith("/") || key.split("/").some((part) => part === ".." || part === "")
    ? "keys are relative paths without empty or '..' segments"
    : undefined

// ---------------------------------------------------------------------------------------------------------------
// Local folder
// ---------------------------------------------------------------------------------------------------------------

/** Writes then renames; `crashBeforeRename` (tests) stops after the temporary file is written, as a crash would. */
export const writeAtomically = async (path: string, bytes: Uint8Array, crashBeforeRename = false): Promise<void> => {
  await mkdir(dirname(path), { recursive: true })
  const temporary = `${path}.tmp-${randomBytes(6).toString("hex")}`
  const file = await open(temporary, "w")
  try {
    await file.writeFile(bytes)
    await file.sync()
  } finally {
    await file.close()
  }
  if (crashBeforeRename) return
  await rename(temporary, path)
}

export const makeLocal = (options: { readonly root: string }): ObjectStoreShape => {
  const root = resolve(options.root)
  const pathOf = (key: string) => {
    const problem = checkKey(key)
    if (problem !== undefined) throw new Error(`bad key ${JSON.stringify(key)}: ${problem}`)
    const path = join(root, ...key.split("/"))
    if (!path.startsWith(root + sep)) throw new Error(`bad key ${JSON.stringify(key)}`)
    return path
  }
  return {
    location: `file://${root}`,
    put: (key, bytes) =>
      Effect.tryPromise({
        try: () => writeAtomically(pathOf(key), bytes),
        catch: (error) => new ObjectStoreError({ operation: "put", key, message: message(error), cause: error })
      }),
    get: (key) =>
      Effect.tryPromise({
        try: async () => {
          try {
            return new Uint8Array(await readFile(pathOf(key)))
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOENT") return null
            throw error
          }
        },
        catch: (error) => new ObjectStoreError({ operation: "get", key, message: message(error), cause: error })
      }),
    delete: (key) =>
      Effect.tryPromise({
        try: () => rm(pathOf(key), { force: true }),
        catch: (error) => new ObjectStoreError({ operation: "delete", key, message: message(error), cause: error })
      }),
    list: (prefix) =>
      Effect.tryPromise({
        try: async () => {
          let entries: Array<Dirent>
          try {
            entries = await readdir(root, { recursive: true, withFileTypes: true })
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOENT") return []
            throw error
          }
          // Temporary files of puts in flight (or cut short by a crash) are not objects.
          return entries
            .filter((entry) => entry.isFile())
            .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join("/"))
            .filter((key) => key.startsWith(prefix) && !/\.tmp-[0-9a-f]{12}$/.test(key))
            .sort()
        },
        catch: (error) =>
          new ObjectStoreError({ operation: "list", key: prefix, message: message(error), cause: error })
      })
  }
}

export const layerLocal = (options: { readonly root: string }): Layer.Layer<ObjectStore> =>
  Layer.sync(ObjectStore)(() => makeLocal(options))

// ---------------------------------------------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------------------------------------------

export interface S3Options {
  readonly bucket: string
  /** Key prefix inside the bucket (no leading or trailing slash needed). */
  readonly prefix?: string | undefined
  /** An S3-compatible endpoint (path-style addressing); undefined: AWS. */
  readonly endpoint?: string | undefined
  readonly region?: string | undefined
  /** Explicit credentials (local servers); undefined: the AWS default chain. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined
  /** Create the bucket when it does not exist (local servers, tests). */
  readonly createBucket?: boolean | undefined
}

/** Parses `s3://bucket/prefix`. */
export const parseS3Url = (url: string): { bucket: string; prefix: string } | undefined => {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url)
  return match === null ? undefined : { bucket: match[1], prefix: match[2].replace(/\/+$/, "") }
}

export const makeS3 = (
  options: S3Options
): Effect.Effect<ObjectStoreShape, ObjectStoreError, import("effect").Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new S3Client({
            region: options.region ?? "us-east-1",
            ...(options.endpoint !== undefined ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
            ...(options.credentials !== undefined ? { credentials: options.credentials } : {})
          })
      ),
      (c) => Effect.sync(() => c.destroy())
    )
    const Bucket = options.bucket
    const prefix = options.prefix === undefined || options.prefix === "" ? "" : `${options.prefix.replace(/\/+$/, "")}/`
    if (options.createBucket === true) {
      yield* Effect.tryPromise({
        try: async () => {
          try {
            await client.send(new HeadBucketCommand({ Bucket }))
          } catch {
            await client.send(new CreateBucketCommand({ Bucket }))
          }
        },
        catch: (error) => new ObjectStoreError({ operation: "open", key: "", message: message(error), cause: error })
      })
    }
    const keyOf = (key: string) => {
      const problem = checkKey(key)
      if (problem !== undefined) throw new Error(`bad key ${JSON.stringify(key)}: ${problem}`)
      return prefix + key
    }
    const store: ObjectStoreShape = {
      location: `s3://${Bucket}/${prefix}`,
      put: (key, bytes) =>
        Effect.tryPromise({
          try: () => client.send(new PutObjectCommand({ Bucket, Key: keyOf(key), Body: bytes })).then(() => undefined),
          catch: (error) => new ObjectStoreError({ operation: "put", key, message: message(error), cause: error })
        }),
      get: (key) =>
        Effect.tryPromise({
          try: async () => {
            try {
              const reply = await client.send(new GetObjectCommand({ Bucket, Key: keyOf(key) }))
              return reply.Body === undefined ? new Uint8Array() : await reply.Body.transformToByteArray()
            } catch (error) {
              const name = (error as { name?: string }).name
              if (name === "NoSuchKey" || name === "NotFound") return null
              throw error
            }
          },
          catch: (error) => new ObjectStoreError({ operation: "get", key, message: message(error), cause: error })
        }),
      delete: (key) =>
        Effect.tryPromise({
          try: () => client.send(new DeleteObjectCommand({ Bucket, Key: keyOf(key) })).then(() => undefined),
          catch: (error) => new ObjectStoreError({ operation: "delete", key, message: message(error), cause: error })
        }),
      list: (listPrefix) =>
        Effect.tryPromise({
          try: async () => {
            const keys: Array<string> = []
            let ContinuationToken: string | undefined
            do {
              const page = await client.send(
                new ListObjectsV2Command({ Bucket, Prefix: prefix + listPrefix, ContinuationToken })
              )
              for (const object of page.Contents ?? []) {
                if (object.Key !== undefined) keys.push(object.Key.slice(prefix.length))
              }
              ContinuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined
            } while (ContinuationToken !== undefined)
            return keys.sort()
          },
          catch: (error) =>
            new ObjectStoreError({ operation: "list", key: listPrefix, message: message(error), cause: error })
        })
    }
    return store
  })

export const layerS3 = (options: S3Options): Layer.Layer<ObjectStore, ObjectStoreError> =>
  Layer.effect(ObjectStore, makeS3(options))

// ---------------------------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------------------------

export const makeMemory = (): ObjectStoreShape => {
  const objects = new Map<string, Uint8Array>()
  return {
    location: "memory://",
    put: (key, bytes) => Effect.sync(() => void objects.set(key, bytes.slice())),
    get: (key) => Effect.sync(() => objects.get(key) ?? null),
    delete: (key) => Effect.sync(() => void objects.delete(key)),
    list: (prefix) => Effect.sync(() => [...objects.keys()].filter((key) => key.startsWith(prefix)).sort())
  }
}

export const layerMemory: Layer.Layer<ObjectStore> = Layer.sync(ObjectStore)(makeMemory)
