/**
 * Ferry's locks in Postgres, and who holds the locks it waits for.
 *
 * - the prepare lock: a transaction advisory lock around Ferry's own DDL (two processes preparing at once);
 * - a stream lock, one per stream and target table: a session advisory lock on a reserved connection
 *   (released before the connection returns to the pool), which says its owner is alive, and a lease
 *   with a fencing epoch (Leases.ts), renewed on that connection, which every transaction of the
 *   stream checks just before its commit;
 * - `blockedOn`: a lock wait on the target table that ran out names the sessions holding locks on it.
 *
 * An advisory lock's key is `hashtextextended(key, 0)`; pg_locks shows such a bigint split in two.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { Duration, Effect } from "effect"
import type { Scope } from "effect"
import { hostname } from "node:os"
import { fromSqlError, isSqlError, withTransaction } from "../../postgres/Database.js"
import { DatabaseError, LockHeld } from "../../domain/Errors.js"
import { type StreamSpec, targetName, type TargetSpec } from "../../domain/StreamSpec.js"
import * as Migrations from "../../postgres/Migrations.js"
import * as Leases from "./Leases.js"
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
  /** false: no advisory locks and no leases (the embedded database locks its data directory instead) */
  readonly advisoryLock: boolean
  /** without advisory locks: fails when this process no longer holds what excludes other runs */
  readonly holdsLock: Effect.Effect<void, DatabaseError> | undefined
  /** how long a lease lasts without renewal */
  readonly lease: Duration.Duration
}

interface StreamLocks {
  readonly lock: (stream: StreamSpec, runId?: string) => Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope>
  /**
   * the stream's lease is still this process's (same epoch), and renewed: in a transaction, just
   * before its COMMIT; else right before a write no transaction guards (the file checkpoint)
   */
  readonly verifyLock: (stream: StreamSpec) => Effect.Effect<void, DatabaseError>
}

/**
 * Renews the lease every third of its length on the lock's connection (through the pool if that
 * session is gone), until another process took it over: then says so once and stops (the stream's
 * next transaction fails).
 */
const renewing = (sql: SqlClient, conn: Connection, lease: Leases.Lease, length: Duration.Duration) => {
  const once = Leases.renew(conn, lease, length).pipe(
    Effect.orElse(() => Leases.renew(sql, lease, length)),
    Effect.catchAll((e) => Effect.as(Effect.logWarning(e.reason), true))
  )
  return Effect.sleep(Duration.unsafeDivide(length, 3)).pipe(
    Effect.zipRight(once),
    Effect.repeat({ while: (ours) => ours }),
    Effect.zipRight(Effect.logWarning("lease.lost").pipe(
      Effect.annotateLogs({ stream: lease.stream, target: lease.target, epoch: lease.epoch })
    ))
  )
}

export const streamLocks = (sql: SqlClient, options: StreamLocksOptions): StreamLocks => {
  /** the leases this process holds, by lock key (Leases.ts: each transaction of a stream checks its own) */
  const held = new Map<string, Leases.Lease>()

  const verifyLock = (stream: StreamSpec): Effect.Effect<void, DatabaseError> =>
    Effect.suspend(() => {
      if (!options.advisoryLock) return options.holdsLock ?? Effect.void
      const lease = held.get(streamLockKey(stream))
      return lease === undefined
        ? Effect.fail(new DatabaseError({ reason: `this run does not hold the lock of stream ${streamLabel(stream)}; stopping rather than writing without it` }))
        : Leases.fence(sql, lease, options.lease)
    })

  const lock = (spec: StreamSpec, runId?: string): Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope> =>
    Effect.gen(function*() {
      const key = streamLockKey(spec)
      const stream = streamLabel(spec)
      const target = targetName(spec.target)
      const conn = yield* sql.reserve.pipe(
        Effect.mapError((e) => fromSqlError(e, `reserving a connection for the lock of stream ${stream}`))
      )
      // Registered before the attempt, so an interruption mid-query cannot leak a held lock into
      // the pool. It runs before the connection goes back to the pool (finalizers run in reverse order).
      yield* Effect.addFinalizer(() => unlock(conn, key, stream))
      const rows = yield* conn.execute(
        `SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked, to_regclass('ferry.leases') IS NOT NULL AS leases`,
        [key],
        undefined
      ).pipe(Effect.mapError((e) => fromSqlError(e, `taking the lock of stream ${stream}`)))
      // `ferry reset` locks without preparing a table: a database an older release migrated gets leases here
      if (rows[0]?.leases !== true) {
        yield* withTransaction(sql)(Effect.zipRight(lockForPrepare(sql), Migrations.migrate(sql))).pipe(
          Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "migrating Ferry's tables in schema ferry")))
        )
      }
      // The advisory lock is the owner's liveness: taken, the last owner's session is gone (a killed
      // process), the lease is ours at once. Not taken, its owner may be a zombie (its session lives on):
      // the lease is ours only once it expired, and the epoch fences the zombie out.
      const free = rows[0]?.locked === true
      const before = free ? undefined : yield* Leases.describe(conn, spec.name, target)
      const owner = `host ${hostname()}, pid ${process.pid}${runId === undefined ? "" : `, run ${runId}`}`
      const epoch = yield* Leases.take(conn, { stream: spec.name, target, label: stream }, owner, options.lease, free)
      if (epoch === undefined) {
        // read again: another run may have taken it over between the two statements
        const now = yield* Leases.describe(conn, spec.name, target)
        const holder = now === undefined ? yield* describeHolder(conn, key) : Leases.holder(now)
        return yield* new LockHeld({ stream: spec.name, target, holder })
      }
      if (before !== undefined) {
        yield* Effect.logWarning("lease.takeover").pipe(
          Effect.annotateLogs({ target, epoch, previous_owner: before.owner, expired_at: before.until })
        )
      }
      const lease: Leases.Lease = { stream: spec.name, target, epoch, label: stream }
      // finalizers run in reverse: the renewal stops, the lease is forgotten, then released
      yield* Effect.addFinalizer(() => Leases.release(conn, lease))
      held.set(key, lease)
      yield* Effect.addFinalizer(() => Effect.sync(() => held.delete(key)))
      yield* Effect.forkScoped(renewing(sql, conn, lease, options.lease))
    })

  return {
    lock: (stream, runId) => options.advisoryLock ? lock(stream, runId) : Effect.void,
    verifyLock
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
