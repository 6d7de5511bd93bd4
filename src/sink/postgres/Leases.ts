/**
 * A stream's lease in `ferry.leases` (one row per stream and target table): who owns the stream, until
 * when, and its epoch, a fencing token that only ever grows. Taking the stream raises the epoch; every
 * transaction that writes for the stream renews the lease only if the epoch is still its own, just
 * before COMMIT, or fails: a process that stalled past its lease and woke (a zombie) cannot commit for
 * a stream another process took over. Times are the server's (`clock_timestamp()`): no clock skew
 * between machines.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect } from "effect"
import { fromSqlError } from "../../postgres/Database.js"
import { DatabaseError } from "../../domain/Errors.js"

/** where a statement runs: the pool (or the current transaction's connection), or the lock's own connection */
export type On = SqlClient | Connection

const query = <A extends object = Record<string, unknown>>(
  on: On,
  text: string,
  params: ReadonlyArray<unknown>,
  doing: string
): Effect.Effect<ReadonlyArray<A>, DatabaseError> =>
  ("unsafe" in on
    ? on.unsafe<A>(text, params)
    : (on.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<A>, SqlError>)).pipe(
      Effect.mapError((e) => fromSqlError(e, doing))
    )

/** the lease of a stream and target this process took: its epoch (int8, as text) */
export interface Lease {
  readonly stream: string
  readonly target: string
  readonly epoch: string
  readonly label: string
}

interface Row {
  readonly epoch: string
  readonly owner: string
  readonly until: string
}

/** `$3` milliseconds from now, by the server's clock */
const until = `clock_timestamp() + $3::bigint * interval '1 millisecond'`

/** the owner a lease names: this session's application_name, then `$4` (host, OS pid, run id) */
const ownerOf = `'"' || current_setting('application_name') || '", ' || $4::text`

/**
 * Takes the lease: `free` (this process took the stream's advisory lock, so its last owner's session
 * is gone) takes it whatever its expiry, or makes it; else only once it expired (its owner still has a
 * session, but stopped renewing). One statement: the epoch grows by one. Undefined: not taken.
 */
export const take = (
  sql: On,
  key: { readonly stream: string; readonly target: string; readonly label: string },
  owner: string,
  lease: Duration.Duration,
  free: boolean
): Effect.Effect<string | undefined, DatabaseError> => {
  const params = [key.stream, key.target, Math.round(Duration.toMillis(lease)), owner]
  const taking = free
    ? `INSERT INTO ferry.leases AS l (stream, target, epoch, owner, expires_at, taken_at)
       VALUES ($1, $2, 1, ${ownerOf}, ${until}, clock_timestamp())
       ON CONFLICT (stream, target) DO UPDATE SET epoch = l.epoch + 1, owner = EXCLUDED.owner,
         expires_at = EXCLUDED.expires_at, taken_at = EXCLUDED.taken_at
       RETURNING epoch::text AS epoch`
    // no row: whoever holds the advisory lock predates leases; it is not ours to take
    : `UPDATE ferry.leases AS l SET epoch = l.epoch + 1, owner = ${ownerOf}, expires_at = ${until},
         taken_at = clock_timestamp()
       WHERE stream = $1 AND target = $2 AND expires_at < clock_timestamp()
       RETURNING epoch::text AS epoch`
  return query<{ epoch: string }>(sql, taking, params, `taking the lease of stream ${key.label}`).pipe(
    Effect.map((rows) => rows[0]?.epoch)
  )
}

/** the lease's owner and until when, for a message; undefined when the stream has no lease row */
export const describe = (sql: On, stream: string, target: string): Effect.Effect<Row | undefined, DatabaseError> =>
  query<Row>(
    sql,
    `SELECT epoch::text AS epoch, owner, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS until
     FROM ferry.leases WHERE stream = $1 AND target = $2`,
    [stream, target],
    `reading the lease of stream ${stream}`
  ).pipe(Effect.map((rows) => rows[0]))

/** the lease's owner as LockHeld names it */
export const holder = (row: Row): string => `${row.owner}, lease epoch ${row.epoch} until ${row.until}`

/**
 * Renews the lease if it is still ours (same epoch): false when another process took it over. Run on
 * the lock's own connection by the renewal fiber, and inside every transaction just before COMMIT (the
 * row lock it takes serialises that commit with a takeover: the taker sees the renewed expiry).
 */
export const renew = (sql: On, lease: Lease, length: Duration.Duration): Effect.Effect<boolean, DatabaseError> =>
  query(
    sql,
    `UPDATE ferry.leases SET expires_at = ${until}
     WHERE stream = $1 AND target = $2 AND epoch = $4::bigint RETURNING 1`,
    [lease.stream, lease.target, Math.round(Duration.toMillis(length)), lease.epoch],
    `renewing the lease of stream ${lease.label}`
  ).pipe(Effect.map((rows) => rows.length > 0))

/** gives the lease up at the end of the run (it expires now; the epoch stays); never fails */
export const release = (sql: On, lease: Lease): Effect.Effect<void> =>
  query(
    sql,
    `UPDATE ferry.leases SET expires_at = clock_timestamp() WHERE stream = $1 AND target = $2 AND epoch = $3::bigint`,
    [lease.stream, lease.target, lease.epoch],
    `releasing the lease of stream ${lease.label}`
  ).pipe(Effect.tapError((e) => Effect.logWarning(e.reason)), Effect.ignore)

/**
 * Fencing: the lease renewed in the current transaction if it is still ours, else a failure (75) that
 * names the stream and who owns it now: the transaction rolls back.
 */
export const fence = (sql: On, lease: Lease, length: Duration.Duration): Effect.Effect<void, DatabaseError> =>
  Effect.flatMap(renew(sql, lease, length), (ours) =>
    ours ? Effect.void : Effect.flatMap(describe(sql, lease.stream, lease.target), (now) =>
      Effect.fail(lost(lease, now))))

/** the error of a lease another process took over */
const lost = (lease: Lease, now: Row | undefined): DatabaseError =>
  new DatabaseError({
    temporary: true,
    reason: `stream ${lease.label}: its lease (epoch ${lease.epoch}) was taken over by ` +
      `${now === undefined ? "another process" : `${now.owner} (epoch ${now.epoch})`}; ` +
      `stopping rather than writing for a stream another process owns`
  })
