/**
 * The embedded database used when no database URL is configured: PGlite (Postgres in WASM) on a data
 * directory, served over the Postgres wire protocol on 127.0.0.1 by pglite-socket, so the same
 * `@effect/sql-pg` code path runs as against a real server.
 *
 * PGlite has ONE session. The socket server accepts one connection (its default) and the client must
 * use a one-connection pool (`clientOptions`); with more, connections would share that session
 * (transactions, advisory locks, SET). The data directory is guarded by `DataDirLock`, taken before
 * PGlite opens it.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { PGlite } from "@electric-sql/pglite"
import type { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { Duration, Effect, Redacted, Scope } from "effect"
import { DatabaseError, LockHeld } from "../domain/Errors.js"
import * as DataDirLock from "./DataDirLock.js"

export interface Embedded {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`; no password (PGlite has no auth) */
  readonly url: Redacted.Redacted<string>
  /** the absolute data directory */
  readonly dataDir: string
}

/** What a `PgClient` on the embedded database must use: one connection, since PGlite has one session. */
export const clientOptions = {
  maxConnections: 1,
  connectTimeout: Duration.seconds(10)
} as const

/**
 * `FERRY_DATA_DIR`, else `<base>/.ferry/pgdata`, a relative path resolved against `base`: the config
 * file's directory, as the file checkpoint store's path is. Not the working directory: cron's is $HOME,
 * and a run from there must find the same database, not start a fresh one and re-sync from `initial`.
 */
export const defaultDataDir = (env: Readonly<Record<string, string | undefined>>, base: string): string => {
  const fromEnv = env.FERRY_DATA_DIR
  return fromEnv !== undefined && fromEnv.trim() !== ""
    ? Path.resolve(base, fromEnv)
    : Path.join(Path.resolve(base), ".ferry", "pgdata")
}

/** Whether `dataDir` holds a database already (PGlite writes `PG_VERSION` when it initialises one). */
export const exists = (dataDir: string): boolean => Fs.existsSync(Path.join(dataDir, "PG_VERSION"))

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Start the embedded database for the life of the scope. On close: stop the socket server, close
 * PGlite (which flushes), release the lock: finalizers run in reverse order of acquisition.
 */
export const start = (options: {
  readonly dataDir: string
}): Effect.Effect<Embedded, LockHeld | DatabaseError, Scope.Scope> =>
  Effect.gen(function*() {
    const dataDir = Path.resolve(options.dataDir)
    const fail = (what: string) => (e: unknown) =>
      new DatabaseError({ reason: `embedded Postgres in ${dataDir}: ${what}: ${describe(e)}` })

    yield* Effect.tryPromise({ try: () => Fs.promises.mkdir(dataDir, { recursive: true }), catch: fail("cannot create the directory") })
    yield* DataDirLock.acquire(dataDir)

    // Loaded here, not at the top: only the embedded path pays for PGlite's start-up.
    const [{ PGlite }, { PGLiteSocketServer }] = yield* Effect.tryPromise({
      try: () => Promise.all([import("@electric-sql/pglite"), import("@electric-sql/pglite-socket")]),
      catch: fail("cannot load @electric-sql/pglite")
    })

    const db: PGlite = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const db = await PGlite.create(dataDir)
          // its one session is every connection's: UTC, as Ferry's sessions on a server (Database.ts),
          // whatever the data directory's postgresql.conf says
          await db.exec("SET TimeZone = 'UTC'")
          return db
        },
        catch: fail("cannot open the data directory")
      }),
      (db) =>
        Effect.tryPromise(() => db.close()).pipe(
          Effect.catchAll((e) => Effect.logWarning(`embedded Postgres: closing ${dataDir} failed: ${describe(e)}`))
        )
    )

    const server: PGLiteSocketServer = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 })
          await server.start()
          return server
        },
        catch: fail("cannot listen on 127.0.0.1")
      }),
      // stop() waits for client sockets to close; it destroys them, but bound the wait anyway
      (server) => Effect.promise(() => server.stop()).pipe(Effect.timeoutOption(Duration.seconds(5)))
    )

    // After start() the server reports the bound address, "127.0.0.1:<port>".
    const port = Number(server.getServerConn().split(":").pop())
    if (!Number.isInteger(port) || port <= 0) {
      return yield* Effect.fail(
        new DatabaseError({ reason: `embedded Postgres in ${dataDir}: no port bound (${server.getServerConn()})` })
      )
    }
    // no TLS on a loopback socket (and PGSSLMODE in the environment must not ask for it)
    return { url: Redacted.make(`postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`), dataDir }
  })

