/**
 * The postgres checkpoint store: table `ferry.state`, written inside the sink's transaction.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer, Option } from "effect"
import { type CheckpointKey, CheckpointStore, type CheckpointStoreShape, type Stored } from "../CheckpointStore.js"
import { fromSqlError } from "../postgres/Database.js"

/**
 * `none`: no `ferry.state` yet; `legacy`: not yet migrated (a release that keyed by stream alone: only
 * `status` and `reset` can meet it, as `prepare` migrates); `keyed`: (stream, target); `parented`:
 * (stream, target, parent), a child stream's checkpoint per parent row (migration 7).
 */
const stateShape = (sql: SqlClient): Effect.Effect<"none" | "legacy" | "keyed" | "parented", SqlError> =>
  Effect.map(
    sql.unsafe<{ present: boolean; keyed: boolean; parented: boolean }>(
      `SELECT to_regclass('ferry.state') IS NOT NULL AS present,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.state') AND attname = 'target'
           AND NOT attisdropped) AS keyed,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.state') AND attname = 'parent'
           AND NOT attisdropped) AS parented`
    ),
    (rows) => (rows[0]?.present !== true ? "none" : rows[0].parented ? "parented" : rows[0].keyed ? "keyed" : "legacy")
  )

const some = (cursor: string | null | undefined, legacy: boolean): Option.Option<Stored> =>
  cursor === null || cursor === undefined ? Option.none() : Option.some({ cursor, legacy })

/**
 * `ferry.state` (made by the sink's `prepare`), one row per (stream, target); target '' is a legacy
 * row. `save` joins the caller's transaction: @effect/sql routes every statement inside
 * `withTransaction` to the transaction's connection. Before the first `prepare` the table does not
 * exist: `load` is None and `clear` a no-op (checked in the catalog, so a missing table never aborts
 * an open transaction).
 */
export const layer: Layer.Layer<CheckpointStore, never, SqlClient> = Layer.effect(
  CheckpointStore,
  Effect.map(SqlClient, (client): CheckpointStoreShape => {
    const sql = client.withoutTransforms()
    const named = (key: CheckpointKey) =>
      `stream ${key.stream} (${key.target}${key.parent === undefined ? "" : `, parent row ${key.parent}`})`
    return {
      kind: "postgres",
      transactional: true,
      load: (key, options) =>
        Effect.gen(function*() {
          const shape = yield* stateShape(sql)
          if (shape === "none") return Option.none()
          if (shape === "legacy") {
            const rows = yield* sql.unsafe<{ cursor: string | null }>(`SELECT cursor FROM ferry.state WHERE stream = $1`, [key.stream])
            return some(rows[0]?.cursor, true)
          }
          if (key.parent !== undefined) {
            // a parent row's checkpoint is always keyed: no release before parents saved one
            const rows = yield* sql.unsafe<{ cursor: string | null }>(
              `SELECT cursor FROM ferry.state WHERE stream = $1 AND target = $2 AND parent = $3`,
              [key.stream, key.target, key.parent]
            )
            return some(rows[0]?.cursor, false)
          }
          const own = shape === "parented" ? `AND parent = ''` : ""
          const [row] = yield* sql.unsafe<{ cursor: string | null; legacy: boolean }>(
            `SELECT cursor, target = '' AS legacy FROM ferry.state WHERE stream = $1 AND target IN ($2, '') ${own}
             ORDER BY target = '' LIMIT 1`,
            [key.stream, key.target]
          )
          if (row === undefined || !row.legacy || options?.adopt !== true) return some(row?.cursor, row?.legacy ?? false)
          // One statement: of two targets adopting at once, one gets the row, the other none.
          const [adopted] = yield* sql.unsafe<{ cursor: string | null }>(
            `UPDATE ferry.state SET target = $2, updated_at = now() WHERE stream = $1 AND target = '' ${own} RETURNING cursor`,
            [key.stream, key.target]
          )
          return some(adopted?.cursor, true)
        }).pipe(Effect.mapError((e) => fromSqlError(e, `reading the checkpoint of ${named(key)}`))),
      save: (key, cursor) =>
        sql.unsafe(
          `INSERT INTO ferry.state (stream, target, parent, cursor, updated_at) VALUES ($1, $2, $3, $4, now())
           ON CONFLICT (stream, target, parent) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at`,
          [key.stream, key.target, key.parent ?? "", cursor]
        ).pipe(
          Effect.asVoid,
          Effect.mapError((e) => fromSqlError(e, `saving the checkpoint of ${named(key)}`))
        ),
      clear: (key) =>
        Effect.gen(function*() {
          const shape = yield* stateShape(sql)
          if (shape === "none") return
          if (shape === "legacy") yield* sql.unsafe(`DELETE FROM ferry.state WHERE stream = $1`, [key.stream])
          else if (key.parent !== undefined && shape === "parented") {
            yield* sql.unsafe(`DELETE FROM ferry.state WHERE stream = $1 AND target = $2 AND parent = $3`, [key.stream, key.target, key.parent])
          } else yield* sql.unsafe(`DELETE FROM ferry.state WHERE stream = $1 AND target IN ($2, '')`, [key.stream, key.target])
        }).pipe(Effect.mapError((e) => fromSqlError(e, `clearing the checkpoint of ${named(key)}`)))
    }
  })
)

// ---------------------------------------------------------------------------------------------
// file: one JSON file, replaced atomically under a lock file
