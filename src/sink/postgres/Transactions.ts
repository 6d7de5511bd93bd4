/**
 * The sink's transactions: one of a stream, that commits only while the run still holds the stream's
 * lease (checked just before COMMIT), and one that always rolls back (--dry-run).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import type { StreamSpec } from "../../domain/StreamSpec.js"
import * as Failpoint from "../../lib/Failpoint.js"
import { fromSqlError, isSqlError, withTransaction } from "../../postgres/Database.js"

/** a successful value carried out of a transaction as a failure, so that it rolls back */
class RollbackSignal<A> {
  constructor(readonly value: A) {}
}

/**
 * `effect` in one transaction (nested: a savepoint) for `stream`, committed after `verifyLock(stream)`
 * says the run still owns the stream
 */
export const transaction = (sql: SqlClient, verifyLock: (stream: StreamSpec) => Effect.Effect<void, DatabaseError>) =>
<A, E, R>(stream: StreamSpec, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DatabaseError, R> =>
  withTransaction(sql)(Effect.zipLeft(effect, Effect.zipRight(verifyLock(stream), Failpoint.pass("before-commit")))).pipe(
    Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "running a transaction")))
  )

/** `effect` in a transaction that is always rolled back; its value is kept */
export const rolledBackTransaction = (sql: SqlClient) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DatabaseError, R> =>
  withTransaction(sql)(Effect.flatMap(effect, (a) => Effect.fail(new RollbackSignal(a)))).pipe(
    Effect.catchIf(
      (e): e is RollbackSignal<A> => e instanceof RollbackSignal,
      (signal) => Effect.succeed(signal.value)
    ),
    Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "running a rolled-back transaction")))
  )
