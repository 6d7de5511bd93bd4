/**
 * What "nothing lost, nothing stale, the checkpoint consistent" means, as code: the checks that
 * test/crash.test.ts, test/failpoints.test.ts and scripts/chaos.mjs apply after a kill and after the
 * final run. Plain JS (only `pg` through the caller's `query`), so that the chaos script runs under
 * bare node; the tests import it through test/support/consistency.ts.
 *
 * C is the stored checkpoint, L the lookback the stream reads again below it (0 for `asc`), T the
 * target table, S the source's truth at the time of the check. After ANY kill:
 *
 * - never backwards: C >= the C seen after the previous kill.
 * - never ahead of the committed rows (the loss check): every record of S whose cursor is strictly
 *   before C - L is in T at its current version (a record at or after C - L is read again by the next
 *   run, so it may be missing or stale now); and C <= the greatest cursor in T (C never names a cursor
 *   that no committed row has reached).
 * - never behind the committed rows: with the postgres store and `asc`, C = the greatest cursor in T
 *   (rows and checkpoint commit in one transaction, so C cannot lag even one row). The file store is
 *   written after the commit (at-least-once), so it may lag one transaction; `unsorted` advances only
 *   when a run completes. For every store and order: after a run that exited 0, C = the greatest
 *   cursor in T.
 * - no extra rows (every id in T is in S) and no row newer than S (T's version <= S's version).
 * - `ferry.runs` never says 'succeeded' for a killed run, unless the kill landed after the run had
 *   finished: then its recorded checkpoint is C.
 * After the final run to completion on a quiet source: 0 missing, 0 extra, 0 stale (every column at
 * S's version), C = S's greatest cursor.
 */

/** The `updated_at` of a cursor in ms; -Infinity for no checkpoint. */
export const msOf = (cursor) => (cursor === undefined || cursor === null ? Number.NEGATIVE_INFINITY : Date.parse(cursor))

/** T as id -> { version, ms, name, amount }; empty when the table does not exist yet. */
export const readTarget = async (query, table, schema = "public") => {
  const [{ present }] = await query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`"${schema}"."${table}"`])
  if (!present) return new Map()
  const rows = await query(`SELECT id, name, amount::float8 AS amount, version, updated_at FROM "${schema}"."${table}"`)
  return new Map(rows.map((r) => [r.id, { version: r.version, ms: new Date(r.updated_at).getTime(), name: r.name, amount: r.amount }]))
}

/** C: from ferry.state (postgres store) or the checkpoint file (file store); undefined when none. */
export const readCheckpoint = async (query, store, stream, file, target = `public.${stream}`) => {
  // a checkpoint belongs to the stream and its target table (file format 2, ferry.state.target)
  if (store === "file") {
    const { existsSync, readFileSync } = await import("node:fs")
    if (!existsSync(file)) return undefined
    const state = JSON.parse(readFileSync(file, "utf8"))
    return state.version === 1 ? state.streams?.[stream]?.cursor : state.streams?.[stream]?.[target]?.cursor
  }
  const [{ keyed, present }] = await query(
    `SELECT to_regclass('ferry.state') IS NOT NULL AS present,
       EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.state') AND attname = 'target') AS keyed`
  )
  if (!present) return undefined
  const rows = keyed
    ? await query(`SELECT cursor FROM ferry.state WHERE stream = $1 AND target = $2`, [stream, target])
    : await query(`SELECT cursor FROM ferry.state WHERE stream = $1`, [stream])
  return rows[0]?.cursor ?? undefined
}

/** S against T: ids missing from T, ids in T not in S, rows not at S's version (any column). */
export const diff = (truth, target) => {
  const missing = []
  const stale = []
  for (const [id, r] of truth) {
    const row = target.get(id)
    if (row === undefined) missing.push(id)
    else if (row.version !== r.version || row.ms !== Date.parse(r.updated_at) || row.name !== r.name || row.amount !== r.amount) {
      stale.push(id)
    }
  }
  const extra = [...target.keys()].filter((id) => !truth.has(id))
  return { missing, extra, stale }
}

const sample = (ids) => (ids.length > 5 ? `${ids.slice(0, 5).join(", ")}, …` : ids.join(", "))

/**
 * The checks after a kill (or any run), as a list of violations (empty: all held).
 * `completed`: the run exited 0. `previous`: C after the previous run (undefined for the first).
 */
export const checkpointViolations = ({ truth, target, checkpoint, previous, store, order, lookbackMs, completed }) => {
  const out = []
  const c = msOf(checkpoint)
  if (previous !== undefined && c < msOf(previous)) out.push(`checkpoint moved backwards: ${previous} -> ${checkpoint}`)
  const upTo = c - lookbackMs
  const lost = []
  for (const [id, r] of truth) {
    if (Date.parse(r.updated_at) < upTo && target.get(id)?.version !== r.version) lost.push(id)
  }
  if (lost.length > 0) {
    out.push(`checkpoint ahead of the committed rows: ${lost.length} record(s) before ${checkpoint} missing or stale (${sample(lost)})`)
  }
  const extra = []
  const newer = []
  let maxMs = Number.NEGATIVE_INFINITY
  for (const [id, row] of target) {
    const r = truth.get(id)
    if (r === undefined) extra.push(id)
    else if (row.version > r.version) newer.push(id)
    if (row.ms > maxMs) maxMs = row.ms
  }
  if (extra.length > 0) out.push(`${extra.length} extra row(s) not in the source (${sample(extra)})`)
  if (newer.length > 0) out.push(`${newer.length} row(s) newer than the source (${sample(newer)})`)
  if (checkpoint !== undefined && c > maxMs) {
    out.push(`checkpoint ${checkpoint} ahead of the greatest committed cursor ${target.size === 0 ? "(no rows)" : new Date(maxMs).toISOString()}`)
  }
  const exact = completed || (store === "postgres" && order === "asc")
  if (exact && target.size > 0 && c < maxMs) {
    out.push(`checkpoint ${checkpoint ?? "(none)"} behind the committed rows (greatest cursor ${new Date(maxMs).toISOString()})`)
  }
  return out
}

/** The `ferry.runs` check for a killed run: no 'succeeded' unless it finished first, with C recorded. */
export const runRowViolations = async (query, runId, stream, checkpoint) => {
  if (runId === undefined) return { violations: [], finished: false }
  const [present] = await query(`SELECT to_regclass('ferry.runs') IS NOT NULL AS present`)
  if (!present.present) return { violations: [], finished: false }
  const [row] = await query(`SELECT status, checkpoint FROM ferry.runs WHERE run_id = $1 AND stream = $2`, [runId, stream])
  if (row === undefined || row.status === "running") return { violations: [], finished: false }
  if (row.status === "succeeded") {
    return {
      violations: row.checkpoint === (checkpoint ?? null) ? [] : [
        `ferry.runs says run ${runId} succeeded with checkpoint ${row.checkpoint}, but ${checkpoint} is stored`
      ],
      finished: true
    }
  }
  return { violations: [`ferry.runs says ${row.status} for killed run ${runId} (expected running)`], finished: false }
}
