/**
 * pg-boss, loaded only here and only by `ferry worker` / `ferry enqueue` (a dynamic import the bin
 * serves from node_modules: `ferry run`, `status` and the library never load it, and keep working on
 * Node 20). pg-boss 12 needs Node 22.12: the gate below says so before anything is touched.
 */
import { Effect, type Scope } from "effect"
import type { ConstructorOptions, PgBoss } from "pg-boss"
import { ConfigError, DatabaseError } from "../domain/Errors.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import { jobsSchema, maintenanceOptions, queueName, queueOptions } from "./Queues.js"

export type Boss = PgBoss

/** pg-boss's `engines`: Node 22.12 or later */
const needs = [22, 12] as const

export const supportsNode = (version: string): boolean => {
  const [major = 0, minor = 0] = version.split(".").map(Number)
  return major > needs[0] || (major === needs[0] && minor >= needs[1])
}

/** 78 on an older Node, naming the command and the Node it runs on. */
export const requireNode = (command: string, version: string) =>
  supportsNode(version) ? Effect.void : Effect.fail(
    new ConfigError({ path: "", reason: `ferry ${command} needs Node ${needs.join(".")} or later (this is Node ${version})` })
  )

export interface Connection {
  readonly connectionString: string
  readonly ssl: ConstructorOptions["ssl"]
  /** for messages: host:port/db, never the password */
  readonly describe: string
  readonly applicationName: string
  /** `sslmode=prefer`: true for the error of a server that refuses TLS; it is then connected to without */
  readonly retryPlain?: ((error: unknown) => boolean) | undefined
}

const reason = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * A started pg-boss on the configured database, in schema `ferry_jobs` (created and migrated on first
 * use), stopped when the scope closes (waiting `stopMillis()` at most for its own work). `worker`: with
 * maintenance and the cron pass; else a client that only sends jobs. `onError`: what pg-boss reports in
 * the background (a lost connection, a failed pass).
 */
/** pg-boss's module: a dependency of Ferry, absent only from a broken installation (78: not worth retrying) */
const load = Effect.tryPromise({
  try: () => import("pg-boss"),
  catch: (cause) =>
    new ConfigError({ path: "", reason: `pg-boss, which ferry worker and enqueue need, cannot be loaded (${reason(cause)}): reinstall Ferry` })
})

export const make = (options: {
  readonly connection: Connection
  readonly worker: boolean
  readonly poolSize: number
  readonly stopMillis: () => number
  readonly onError: (error: unknown) => void
}): Effect.Effect<Boss, DatabaseError | ConfigError, Scope.Scope> =>
  Effect.flatMap(load, ({ PgBoss }) => {
    const { connection } = options
    const start = async (ssl: ConstructorOptions["ssl"]) => {
      const boss = new PgBoss({
        connectionString: connection.connectionString,
        ssl,
        schema: jobsSchema,
        application_name: connection.applicationName,
        max: options.poolSize,
        connectionTimeoutMillis: 5000,
        supervise: options.worker,
        schedule: options.worker,
        registerInstance: options.worker,
        instanceName: "ferry-worker",
        ...maintenanceOptions
      })
      boss.on("error", options.onError)
      try {
        return await boss.start()
      } catch (error) {
        await boss.stop({ graceful: false, timeout: 1000 }).catch(() => {})
        throw error
      }
    }
    return Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          try {
            return await start(connection.ssl)
          } catch (error) {
            if (connection.ssl === false || connection.retryPlain?.(error) !== true) throw error
            return await start(false)
          }
        },
        catch: (cause) => new DatabaseError({ reason: `the job queue (pg-boss) could not start on ${connection.describe}: ${reason(cause)}` })
      }),
      (boss) => Effect.promise(() => boss.stop({ graceful: true, timeout: Math.min(options.stopMillis(), 3_600_000) }).catch(options.onError))
    )
  })

/** Each stream's queue, created (idempotent) with Ferry's options, or brought up to them. */
export const ensureQueues = (boss: Boss, streams: ReadonlyArray<StreamSpec>) =>
  Effect.forEach(streams, (stream) =>
    Effect.tryPromise({
      try: async () => {
        const name = queueName(stream)
        await boss.createQueue(name, queueOptions)
        const { policy: _policy, ...updatable } = queueOptions
        await boss.updateQueue(name, updatable)
      },
      catch: (cause) => new DatabaseError({ reason: `could not create the job queue of stream "${stream.name}": ${reason(cause)}` })
    }), { discard: true })

export const failure = (doing: string) => (cause: unknown) => new DatabaseError({ reason: `${doing}: ${reason(cause)}` })
