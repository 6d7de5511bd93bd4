/**
 * The sink's transactions: one that commits only while the run still holds its locks, and one that
 * always rolls back (--dry-run).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import * as Failpoint from "../../lib/Failpoint.js"
import { fromSqlError, isSqlError } from "../../postgres/Database.js"

/** a successful value carried out of a transaction as a failure, so that it rolls back */
class RollbackSignal<A> {
  constructor(readonly value: A) {}
}

/** `effect` in one transaction (nested: a savepoint), committed after `verifyLocks` says the run may */
export const transaction = (sql: SqlClient, verifyLocks: Effect.Effect<void, DatabaseError>) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DatabaseError, R> =>
  sql.withTransaction(Effect.zipLeft(effect, Effect.zipRight(verifyLocks, Failpoint.pass("before-commit")))).pipe(
    Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "running a transaction")))
  )

/** `effect` in a transaction that is always rolled back; its value is kept */
export const rolledBackTransaction = (sql: SqlClient) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DatabaseError, R> =>
  sql.withTransaction(Effect.flatMap(effect, (a) => Effect.fail(new RollbackSignal(a)))).pipe(
    Effect.catchIf(
      (e): e is RollbackSignal<A> => e instanceof RollbackSignal,
      (signal) => Effect.succeed(signal.value)
    ),
    Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "running a rolled-back transaction")))
  )
