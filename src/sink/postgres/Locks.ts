/**
 * Ferry's locks in Postgres, and who holds the locks it waits for.
 *
 * - the prepare lock: a transaction advisory lock around Ferry's own DDL (two processes preparing at once);
 * - a stream lock: a session advisory lock on a reserved connection, released before the connection
 *   returns to the pool, one per stream and target table. Every transaction checks, before its
 *   commit, that the run still holds its locks;
 * - `blockedOn`: a lock wait on the target table that ran out names the sessions holding locks on it.
 *
 * An advisory lock's key is `hashtextextended(key, 0)`; pg_locks shows such a bigint split in two.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { Effect } from "effect"
import type { Scope } from "effect"
import { fromSqlError } from "../../postgres/Database.js"
import { DatabaseError, LockHeld } from "../../domain/Errors.js"
import { type StreamSpec, targetName, type TargetSpec } from "../../domain/StreamSpec.js"
import { displayName, qualifiedName, query } from "./Sql.js"

/** the key of Ferry's lock around its own DDL (two processes preparing at once) */
const PREPARE_LOCK = "ferry:prepare"

/** Ferry's prepare lock, held until the current transaction ends */
export const lockForPrepare = (sql: SqlClient): Effect.Effect<void, DatabaseError> =>
  Effect.asVoid(query(sql, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [PREPARE_LOCK], "locking Ferry's schema"))

/** one lock per stream AND target table: same-named streams of two configs do not exclude each other */
const streamLockKey = (stream: StreamSpec): string => `ferry:stream:${stream.name}:${targetName(stream.target)}`
const streamLabel = (stream: StreamSpec): string => `${stream.name} (${targetName(stream.target)})`

/**
 * The one condition on pg_locks `l` for the advisory lock of key `$1` in this database (granted or
 * waited for): the queries below add whose.
 */
const advisoryLockOf = `l.locktype = 'advisory' AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = ((hashtextextended($1, 0) >> 32) & 4294967295)
  AND l.objid::bigint = (hashtextextended($1, 0) & 4294967295)`

/** who holds the lock `key` that this session could not take: for LockHeld's message */
const describeHolder = (conn: Connection, key: string): Effect.Effect<string> =>
  conn.execute(
    `SELECT a.application_name AS app, host(a.client_addr) AS addr, a.pid AS pid,
            a.backend_start::text AS since
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE ${advisoryLockOf} AND l.granted AND l.pid <> pg_backend_pid()`,
    [key],
    undefined
  ).pipe(
    Effect.map((rows) => {
      const r = rows[0] as { app: string | null; addr: string | null; pid: number; since: string | null } | undefined
      if (r === undefined) return "another session (it may have just finished)"
      const app = r.app ? `"${r.app}"` : "an unnamed client"
      const from = r.addr ? `from ${r.addr}` : "over a local socket"
      const since = r.since ? `, connected since ${r.since}` : ""
      return `${app} ${from}, backend pid ${r.pid}${since}`
    }),
    Effect.orElseSucceed(() => "another session (its details could not be read)")
  )

/** releases the lock `key` if this session holds it (pg_advisory_unlock would warn otherwise); never fails */
const unlock = (conn: Connection, key: string, stream: string): Effect.Effect<void> =>
  conn.execute(
    `SELECT pg_advisory_unlock(hashtextextended($1, 0)) FROM pg_locks l
     WHERE ${advisoryLockOf} AND l.pid = pg_backend_pid()`,
    [key],
    undefined
  ).pipe(
    Effect.tapError((e) => Effect.logWarning(fromSqlError(e, `releasing the lock of stream ${stream}`).reason)),
    Effect.ignore
  )

interface StreamLocksOptions {
  /** false: no advisory locks (the embedded database locks its data directory instead) */
  readonly advisoryLock: boolean
  /** without advisory locks: fails when this process no longer holds what excludes other runs */
  readonly holdsLock: Effect.Effect<void, DatabaseError> | undefined
}

interface StreamLocks {
  readonly lock: (stream: StreamSpec) => Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope>
  readonly verifyLock: (stream: StreamSpec) => Effect.Effect<void, DatabaseError>
  /** every stream lock this process holds is still held (before each commit) */
  readonly verifyAll: Effect.Effect<void, DatabaseError>
}

export const streamLocks = (sql: SqlClient, options: StreamLocksOptions): StreamLocks => {
  /**
   * The stream locks this process holds: lock key -> the stream's label and the backend pid of the
   * session holding it. If that session dies (the server restarted, an admin terminated it), Postgres
   * drops the lock while we go on over fresh pool connections: every transaction checks, before its
   * commit, that the lock is still ours, so a run never writes without it.
   */
  const held = new Map<string, { readonly label: string; readonly pid: number }>()

  const check = (key: string, label: string, pid: number): Effect.Effect<void, DatabaseError> =>
    query<{ held: boolean }>(
      sql,
      `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE ${advisoryLockOf} AND l.granted AND l.pid = $2) AS held`,
      [key, pid],
      `checking the lock of stream ${label}`
    ).pipe(
      Effect.filterOrFail(
        (rows) => rows[0]?.held === true,
        () =>
          new DatabaseError({
            reason: `lost the lock of stream ${label}: its database session (backend pid ${pid}) ended; ` +
              `stopping rather than writing without it`
          })
      ),
      Effect.asVoid
    )

  const verifyLock = (stream: StreamSpec): Effect.Effect<void, DatabaseError> =>
    Effect.suspend(() => {
      if (!options.advisoryLock) return options.holdsLock ?? Effect.void
      const key = streamLockKey(stream)
      const lock = held.get(key)
      return lock === undefined
        ? Effect.fail(new DatabaseError({ reason: `this run does not hold the lock of stream ${streamLabel(stream)}; stopping rather than writing without it` }))
        : check(key, lock.label, lock.pid)
    })

  const lock = (spec: StreamSpec): Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope> =>
    Effect.gen(function*() {
      const key = streamLockKey(spec)
      const stream = streamLabel(spec)
      const conn = yield* sql.reserve.pipe(
        Effect.mapError((e) => fromSqlError(e, `reserving a connection for the lock of stream ${stream}`))
      )
      // Registered before the attempt, so an interruption mid-query cannot leak a held lock into
      // the pool. It runs before the connection goes back to the pool (finalizers run in reverse order).
      yield* Effect.addFinalizer(() => unlock(conn, key, stream))
      const rows = yield* conn.execute(
        `SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked, pg_backend_pid() AS pid`,
        [key],
        undefined
      ).pipe(Effect.mapError((e) => fromSqlError(e, `taking the lock of stream ${stream}`)))
      if (rows[0]?.locked !== true) {
        const holder = yield* describeHolder(conn, key)
        return yield* new LockHeld({ stream: spec.name, target: targetName(spec.target), holder })
      }
      held.set(key, { label: stream, pid: Number(rows[0]?.pid) })
      // runs before the unlock above (reverse order)
      yield* Effect.addFinalizer(() => Effect.sync(() => held.delete(key)))
    })

  return {
    lock: (stream) => options.advisoryLock ? lock(stream) : Effect.void,
    verifyLock,
    // With several streams at once (`--concurrency`), another stream may end and release its lock while
    // this check runs: a lock no longer in `held` was released on purpose, not lost.
    verifyAll: Effect.suspend(() =>
      Effect.forEach([...held], ([key, { label, pid }]) =>
        check(key, label, pid).pipe(
          Effect.catchAll((error) => held.get(key)?.pid === pid ? Effect.fail(error) : Effect.void)
        ), { discard: true })
    )
  }
}

/**
 * A lock wait that ran out (DatabaseError.temporary, 75) also names the other sessions holding locks
 * on the table (this process's own share its application_name), the strongest first: who to ask. Read
 * on a connection of its own (the failed statement's transaction is aborted); one query, on failure only.
 */
export const blockedOn = (sql: SqlClient, target: TargetSpec) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchIf(
    effect,
    (e): e is E & DatabaseError => e instanceof DatabaseError && e.temporary === true,
    (e) =>
      Effect.scoped(Effect.flatMap(sql.reserve, (conn) =>
        conn.execute(
          `SELECT a.application_name AS app, a.pid, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'relation' AND l.granted AND l.relation = to_regclass($1)
             AND a.application_name IS DISTINCT FROM current_setting('application_name')
           ORDER BY l.mode = 'AccessShareLock', a.backend_start LIMIT 3`,
          [qualifiedName(target)],
          undefined
        ))).pipe(
          Effect.map((rows) => {
            const holders = (rows as ReadonlyArray<{ app: string | null; pid: number; mode: string }>).map((r) =>
              `${r.app ? `"${r.app}"` : "an unnamed client"} (backend pid ${r.pid}, ${r.mode})`
            )
            return holders.length === 0
              ? e
              : new DatabaseError({ reason: `${e.reason}; sessions holding locks on ${displayName(target)}: ${holders.join(", ")}`, temporary: true })
          }),
          Effect.orElseSucceed(() => e),
          Effect.flatMap((error) => Effect.fail(error as E))
        )
  )
