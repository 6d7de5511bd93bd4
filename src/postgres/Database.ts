/**
 * The connection to PostgreSQL: a `PgClient` layer that always has a connect timeout and an
 * `application_name` saying who we are (it is how `LockHeld` names the holder), and the one place
 * where SQL failures become `DatabaseError`s. Messages name `host:port/database`, never the URL
 * or the password.
 */
import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { hostname } from "node:os"
import Pg from "pg"
import { type ConfigError, DatabaseError } from "../domain/Errors.js"
import * as PgTls from "./Tls.js"

export interface DatabaseOptions {
  readonly url: Redacted.Redacted<string>
  /** default 5 seconds: without it a connect to a server that never answers hangs for ever */
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly maxConnections?: number | undefined
  /** default `ferry <hostname> pid <pid>` */
  readonly applicationName?: string | undefined
  /**
   * default 1: how many connections to open at start, at once. A run holds two (its stream lock's
   * and the pool's); opened one after the other, the second waits for the first to be set up.
   */
  readonly connections?: number | undefined
  /** for PGSSLMODE and the other libpq variables; default `process.env` */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** the startup packet's `options` (e.g. `-c lock_timeout=10s`): settings every session gets */
  readonly sessionOptions?: string | undefined
}

/** How long a session of Ferry's waits for a lock, and for one statement (0: without bound). */
export interface Timeouts {
  readonly lockTimeout: Duration.Duration
  readonly statementTimeout: Duration.Duration
  /**
   * a session idle inside a transaction this long is ended by the server (its transaction rolls
   * back): a process frozen mid-transaction (a zombie) holds no row lock past about its lease
   */
  readonly idleInTransactionTimeout: Duration.Duration
}

/**
 * The defaults. A lock: 1 minute, then 75 (the next run tries again; a migration or a bulk job that
 * holds the table longer is not Ferry's to wait out). A statement: 15 minutes, far beyond any of Ferry's
 * own (one batch's upsert or COPY takes seconds), so only a statement that would never end is cut.
 */
const defaultTimeouts: Timeouts = {
  lockTimeout: Duration.minutes(1),
  statementTimeout: Duration.minutes(15),
  // the default lease (config `lease:`, which sets it)
  idleInTransactionTimeout: Duration.seconds(30)
}

/** the settings a URL's own `options=` names (`-c lock_timeout=5s` or `--lock_timeout=5s`) */
const urlSettings = (url: string): ReadonlySet<string> => {
  try {
    const own = new URL(url).searchParams.get("options") ?? ""
    return new Set([...own.matchAll(/(?:-c\s*|--)([A-Za-z_.]+)\s*=/g)].map((m) => m[1]!.toLowerCase()))
  } catch {
    return new Set()
  }
}

/**
 * The startup options for `timeouts`: a setting given in the config wins over the URL's `options=`
 * (Ferry's go after the URL's); a default only applies where the URL's `options=` says nothing.
 */
export const timeoutOptions = (url: string, explicit: Partial<Timeouts>): string => {
  const named = urlSettings(url)
  const option = (name: string, value: Duration.Duration | undefined, fallback: Duration.Duration) =>
    value !== undefined
      ? [`-c ${name}=${Math.round(Duration.toMillis(value))}`]
      : named.has(name)
      ? []
      : [`-c ${name}=${Math.round(Duration.toMillis(fallback))}`]
  return [
    ...option("lock_timeout", explicit.lockTimeout, defaultTimeouts.lockTimeout),
    ...option("statement_timeout", explicit.statementTimeout, defaultTimeouts.statementTimeout),
    ...option("idle_in_transaction_session_timeout", explicit.idleInTransactionTimeout, defaultTimeouts.idleInTransactionTimeout)
  ].join(" ")
}

/** the startup option every session Ferry opens has: timestamps without an offset are UTC */
const utcSession = "-c TimeZone=UTC"

/** A URL's own `options=` would replace Ferry's startup options (pg lets the URL win): Ferry's go after them. */
const withSessionOptions = (url: string, startup: string): string => {
  try {
    const u = new URL(url)
    const own = u.searchParams.get("options")
    if (own === null) return url
    u.searchParams.set("options", `${own} ${startup}`)
    return u.toString()
  } catch {
    return url
  }
}

export const defaultApplicationName = (): string => `ferry ${hostname()} pid ${process.pid}`

/** `host:port/database` of a connection URL, for messages. Never the user or password. */
export const describe = (url: Redacted.Redacted<string>): string => {
  try {
    const u = new URL(Redacted.value(url))
    // `postgres:///db?host=/run/postgresql` puts the host (often a socket directory) in the query
    const host = decodeURIComponent(u.hostname) || u.searchParams.get("host") || "localhost"
    const port = u.port || u.searchParams.get("port") || "5432"
    const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || u.searchParams.get("dbname") ||
      (u.username ? decodeURIComponent(u.username) : "postgres")
    return `${host}:${port}/${database}`
  } catch {
    return "the database (its URL could not be parsed)"
  }
}

/** the password inside a URL, to scrub it from any message that might echo it */
const passwordOf = (url: Redacted.Redacted<string>): ReadonlyArray<string> => {
  try {
    const u = new URL(Redacted.value(url))
    if (u.password === "") return []
    return [u.password, decodeURIComponent(u.password)]
  } catch {
    return []
  }
}

const scrub = (text: string, secrets: ReadonlyArray<string>): string =>
  secrets.filter((s) => s.length >= 3).reduce((acc, s) => acc.split(s).join("***"), text)

interface ErrorLike {
  readonly message?: unknown
  readonly code?: unknown
  readonly errors?: unknown
  readonly cause?: unknown
}

const asErrorLike = (u: unknown): ErrorLike | undefined =>
  typeof u === "object" && u !== null ? (u as ErrorLike) : undefined

/** for `Effect.catchIf`: a failure of @effect/sql itself, to map to a DatabaseError with `fromSqlError` */
export const isSqlError = (u: unknown): u is SqlError => u instanceof SqlError

/**
 * `sql.withTransaction`, with a COMMIT or ROLLBACK that failed a `SqlError` again: @effect/sql makes it a
 * defect (orDie), which would end the run as an internal error (70) when its connection was lost at that
 * moment (a session the server ended, a process frozen past its lease): a database error (74/75) it is.
 */
export const withTransaction = (sql: SqlClient) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
  sql.withTransaction(effect).pipe(
    Effect.catchSomeDefect((defect) => (isSqlError(defect) ? Option.some(Effect.fail(defect)) : Option.none()))
  )

/** the SQLSTATE of a failed statement, when Postgres sent one */
export const sqlState = (error: SqlError): string | undefined => {
  const code = asErrorLike(error.cause)?.code
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** one line describing a low-level cause: a pg error, a Node socket error, an AggregateError, ... */
const describeCause = (cause: unknown): string => {
  const e = asErrorLike(cause)
  if (e === undefined) return String(cause)
  const message = typeof e.message === "string" ? e.message : ""
  const code = typeof e.code === "string" ? e.code : undefined
  // Node's happy-eyeballs connect fails with an AggregateError whose own message is empty
  if (message === "" && Array.isArray(e.errors) && e.errors.length > 0) {
    return e.errors.map(describeCause).join(", ")
  }
  if (message === "") return code ?? "unknown error"
  if (code !== undefined && !message.includes(code)) {
    return /^[0-9A-Z]{5}$/.test(code) ? `${message} (SQLSTATE ${code})` : `${message} (${code})`
  }
  return message
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/** SQLSTATE 55P03: a lock not granted in time (`lock_timeout`) */
export const lockNotAvailable = "55P03"
/** SQLSTATE 57014: a statement canceled, by `statement_timeout` or by someone's pg_cancel_backend */
const queryCanceled = "57014"

/**
 * `doing: <pg message> (SQLSTATE xxxxx)`, one line, no secrets. Use for every SqlError. A lock wait that
 * ran out is temporary (75: another session held the lock; the next run tries again); a statement
 * timeout is not (74: the same statement will take as long next time).
 */
export const fromSqlError = (error: SqlError, doing: string): DatabaseError => {
  const cause = error.cause === undefined ? (error.message ?? "unknown error") : describeCause(error.cause)
  const state = sqlState(error)
  const hint = state === lockNotAvailable
    ? "; it waited database.lockTimeout for a lock another session holds"
    : state === queryCanceled && /statement timeout/.test(cause)
    ? "; the statement ran longer than database.statementTimeout"
    : ""
  return new DatabaseError({
    reason: oneLine(`${doing}: ${cause}${hint}`),
    ...(state === lockNotAvailable ? { temporary: true } : {})
  })
}

/** the message for a failed connect: where, and why (refused, authentication, timeout) */
const connectError = (url: Redacted.Redacted<string>, error: SqlError): DatabaseError => {
  const cause = error.cause === undefined ? (error.message ?? "unknown error") : describeCause(error.cause)
  return new DatabaseError({
    reason: oneLine(scrub(`cannot connect to PostgreSQL at ${describe(url)}: ${cause}`, passwordOf(url)))
  })
}

/**
 * The pool, with `connections` of them open and idle. What `PgClient.layer` does (a `SELECT 1`, the
 * same errors, `end` on release), except that it can open several connections at once, and TLS is
 * set up as libpq would (`PgTls.ts`): with `sslmode=prefer` (the default), a server that refuses TLS
 * is connected to again without it.
 */
const pool = (options: DatabaseOptions, tls: PgTls.Tls) =>
  Effect.gen(function*() {
    const connectTimeout = options.connectTimeout ?? Duration.seconds(5)
    // Ferry's rule: a timestamp without an offset is UTC (Cursor.instantOf). Postgres reads such a
    // literal into timestamptz in the session's zone, so every session runs in UTC, whatever the
    // server's or the database's own default (a startup option outranks ALTER DATABASE ... SET).
    const startup = options.sessionOptions === undefined ? utcSession : `${utcSession} ${options.sessionOptions}`
    const makePool = (ssl: PgTls.Tls["ssl"]) => {
      const pool = new Pg.Pool({
        connectionString: withSessionOptions(tls.url, startup),
        ssl,
        connectionTimeoutMillis: Duration.toMillis(connectTimeout),
        max: options.maxConnections,
        application_name: options.applicationName ?? defaultApplicationName(),
        // Ferry's sessions run in UTC and wait a bounded time for a lock or a statement (timeoutOptions)
        options: startup
      })
      // an idle connection's error (the server went away) surfaces on its next query instead
      pool.on("error", () => {})
      return pool
    }
    const opening = Math.max(1, Math.min(options.connections ?? 1, options.maxConnections ?? Infinity))
    // all settled before failing, so that a connection that did open is closed with the pool
    const connect = async (pool: Pg.Pool) => {
      const results = await Promise.allSettled(Array.from({ length: opening }, () => pool.query("SELECT 1")))
      const failed = results.find((r) => r.status === "rejected")
      if (failed === undefined) return pool
      await pool.end().catch(() => {})
      throw failed.reason
    }
    const open = async () => {
      try {
        return await connect(makePool(tls.ssl))
      } catch (error) {
        if (tls.plainIfRefused && PgTls.isTlsRefused(error)) return connect(makePool(false))
        throw error
      }
    }
    return yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: open,
        catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
    ).pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
      })
    )
  })

/** The database; a bad `sslmode` or an unreadable certificate file fails it with a ConfigError (78). */
export const layer = (
  options: DatabaseOptions
): Layer.Layer<PgClient.PgClient | SqlClient, DatabaseError | ConfigError> =>
  Either.match(PgTls.fromUrl(Redacted.value(options.url), { env: options.env ?? process.env }), {
    onLeft: (error) => Layer.fail(error),
    onRight: (tls) =>
      PgClient.layerFromPool({ acquire: pool(options, tls) }).pipe(
        Layer.mapError((error) => connectError(options.url, error))
      )
  })
