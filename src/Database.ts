/**
 * The connection to PostgreSQL: a `PgClient` layer that always has a connect timeout and an
 * `application_name` saying who we are (it is how `LockHeld` names the holder), and the one place
 * where SQL failures become `DatabaseError`s. Messages name `host:port/database`, never the URL
 * or the password.
 */
import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Layer, Redacted } from "effect"
import { hostname } from "node:os"
import { DatabaseError } from "./Errors.js"

export interface DatabaseOptions {
  readonly url: Redacted.Redacted<string>
  /** default 5 seconds: without it a connect to a server that never answers hangs for ever */
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly maxConnections?: number | undefined
  /** default `ferry <hostname> pid <pid>` */
  readonly applicationName?: string | undefined
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

/** `doing: <pg message> (SQLSTATE xxxxx)`, one line, no secrets. Use for every SqlError. */
export const fromSqlError = (error: SqlError, doing: string): DatabaseError => {
  const cause = error.cause === undefined ? (error.message ?? "unknown error") : describeCause(error.cause)
  return new DatabaseError({ reason: oneLine(`${doing}: ${cause}`) })
}

/** the message for a failed connect: where, and why (refused, authentication, timeout) */
const connectError = (url: Redacted.Redacted<string>, error: SqlError): DatabaseError => {
  const cause = error.cause === undefined ? (error.message ?? "unknown error") : describeCause(error.cause)
  return new DatabaseError({
    reason: oneLine(scrub(`cannot connect to PostgreSQL at ${describe(url)}: ${cause}`, passwordOf(url)))
  })
}

export const layer = (options: DatabaseOptions): Layer.Layer<PgClient.PgClient | SqlClient, DatabaseError> =>
  PgClient.layer({
    url: options.url,
    connectTimeout: options.connectTimeout ?? Duration.seconds(5),
    maxConnections: options.maxConnections,
    applicationName: options.applicationName ?? defaultApplicationName()
  }).pipe(Layer.mapError((error) => connectError(options.url, error)))
