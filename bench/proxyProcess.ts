/**
 * Pausable TCP proxies (test/harness.ts's `pausableProxy`) run in a child process of their own, driven over IPC.
 * In the bench's process they shared its event loop with the load generator: a busy generator delayed every byte
 * of the runners' Postgres sessions, the shard-lock session included, and so made faults the schedule never drew.
 * The child exits when its parent goes (the IPC channel closes), so a bench that dies leaves no proxy behind.
 */
import { fork } from "node:child_process"
import { pausableProxy } from "../test/harness.ts"

type Op = "pause" | "resume" | "cut"

interface Command {
  readonly id: number
  readonly op: Op
  /** Indexes of the proxies the command applies to, all at once. */
  readonly proxies: ReadonlyArray<number>
}

type Reply = { readonly id: number; readonly ok: true } | { readonly id: number; readonly ok: false; error: string }

type Ready = { readonly ready: ReadonlyArray<number> }

const childFlag = "TESSERA_PROXY_PROCESS"

/** The child: one proxy per target in `TESSERA_PROXY_TARGETS`, their ports sent once listening, then commands. */
const serve = async () => {
  const targets: ReadonlyArray<{ host: string; port: number }> = JSON.parse(process.env.TESSERA_PROXY_TARGETS ?? "[]")
  const proxies = await Promise.all(targets.map((target) => pausableProxy(target)))
  process.on("disconnect", () => process.exit(0))
  process.on("message", (command: Command) => {
    try {
      for (const i of command.proxies) proxies[i][command.op]()
      process.send!({ id: command.id, ok: true } satisfies Reply)
    } catch (error) {
      process.send!({ id: command.id, ok: false, error: String(error) } satisfies Reply)
    }
  })
  process.send!({ ready: proxies.map((proxy) => proxy.port) } satisfies Ready)
}

if (process.env[childFlag] === "1" && process.send !== undefined) await serve()

/**
 * Starts one proxy per target in a child process; resolves with their ports and a `command` that pauses (holds
 * every byte), resumes or cuts (closes every connection of) the proxies named, answered once the child applied it.
 * Each command has a deadline of `timeoutMs`.
 */
export const startProxies = async (
  targets: ReadonlyArray<{ readonly host: string; readonly port: number }>,
  timeoutMs = 5000
) => {
  const child = fork(import.meta.filename, [], {
    env: { ...process.env, [childFlag]: "1", TESSERA_PROXY_TARGETS: JSON.stringify(targets) },
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()))
  const pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>()
  let ports: ReadonlyArray<number> = []
  const ready = new Promise<void>((resolveReady, rejectReady) => {
    const timer = setTimeout(() => rejectReady(new Error("the proxy process did not start in time")), 30_000)
    child.once("exit", (code) => {
      clearTimeout(timer)
      rejectReady(new Error(`the proxy process exited with ${code}`))
      for (const waiter of pending.values()) waiter.reject(new Error("the proxy process exited"))
      pending.clear()
    })
    child.on("message", (message: Reply | Ready) => {
      if ("ready" in message) {
        clearTimeout(timer)
        ports = message.ready
        resolveReady()
        return
      }
      const waiter = pending.get(message.id)
      pending.delete(message.id)
      if (message.ok) waiter?.resolve()
      else waiter?.reject(new Error(message.error))
    })
  })
  try {
    await ready
  } catch (error) {
    child.kill("SIGKILL")
    throw error
  }
  let nextId = 0
  const command = (op: Op, proxies: ReadonlyArray<number>) =>
    new Promise<void>((resolveCommand, rejectCommand) => {
      const id = nextId++
      const timer = setTimeout(() => {
        pending.delete(id)
        rejectCommand(new Error(`proxy ${op} not answered in ${timeoutMs} ms`))
      }, timeoutMs)
      pending.set(id, {
        resolve: () => {
          clearTimeout(timer)
          resolveCommand()
        },
        reject: (error) => {
          clearTimeout(timer)
          rejectCommand(error)
        }
      })
      child.send({ id, op, proxies } satisfies Command)
    })
  return {
    ports,
    command,
    /** Ends the child (its proxies close every connection with it). */
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
      await exited
    }
  }
}
