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

/**
 * T as id -> { version, ms, name, amount }; empty when the table does not exist yet. `marked`: the
 * table has `_deleted_at` (deletes with `action: mark`), read as `marked` (true when set).
 */
export const readTarget = async (query, table, schema = "public", { marked = false } = {}) => {
  const [{ present }] = await query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`"${schema}"."${table}"`])
  if (!present) return new Map()
  const rows = await query(
    `SELECT id, name, amount::float8 AS amount, version, updated_at${marked ? ", _deleted_at IS NOT NULL AS marked" : ""} FROM "${schema}"."${table}"`
  )
  return new Map(rows.map((r) => [r.id, {
    version: r.version,
    ms: new Date(r.updated_at).getTime(),
    name: r.name,
    amount: r.amount,
    ...(marked ? { marked: r.marked } : {})
  }]))
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
    else if (!holds(row, r)) stale.push(id)
  }
  const extra = [...target.keys()].filter((id) => !truth.has(id))
  return { missing, extra, stale }
}

/** a row of T holds exactly this version of a record (every column) */
const holds = (row, r) => row.version === r.version && row.ms === Date.parse(r.updated_at) && row.name === r.name && row.amount === r.amount

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

/** two readings of T hold the same rows (every column) */
export const sameTable = (a, b) => {
  if (a.size !== b.size) return false
  for (const [id, row] of a) {
    const other = b.get(id)
    if (other === undefined || other.version !== row.version || other.ms !== row.ms || other.name !== row.name || other.amount !== row.amount) return false
  }
  return true
}

/**
 * `write: replace`, after any run (killed or not). P is T before the run, `served` every record version
 * the source's pages carried during the run (id -> versions; a record changed mid-run may be served
 * twice). T must be P exactly (the swap did not commit), or the run's read: exactly the ids served,
 * each row at one of the versions served for it (which one the staging table kept is Ferry's choice:
 * any version the run read is "the source as the run read it"). Never a mix of the two, never empty
 * (the source is never empty), never a row the run did not read. After a run that exited 0, the read.
 */
export const replaceViolations = ({ previous, target, served, completed }) => {
  const notServed = [...target.keys()].filter((id) => !served.has(id))
  const unread = [...served.keys()].filter((id) => !target.has(id))
  const otherVersion = [...target].filter(([id, row]) => served.has(id) && !served.get(id).some((r) => holds(row, r))).map(([id]) => id)
  const isRead = notServed.length === 0 && unread.length === 0 && otherVersion.length === 0
  if (isRead) return []
  const kept = sameTable(previous, target)
  if (kept && !completed) return []
  const what = `${target.size} row(s): ${notServed.length} not served in this run (${sample(notServed)}), ` +
    `${unread.length} served id(s) absent (${sample(unread)}), ${otherVersion.length} at a version not served (${sample(otherVersion)})`
  if (kept) return [`the run exited 0 but the table is the one before it (${previous.size} rows); against the read: ${what}`]
  return [`the table is neither the one before the run (${previous.size} rows) nor the run's read: ${what}`]
}

/**
 * `deletes: { detect: missing }`, after any run. P is T before the run, S the source now (the truth),
 * `gone` the last version of each record S no longer has, `removed` the ids removed during the run
 * (records come back only between runs, so every id of S was in the source throughout the run).
 * - a kill never deletes what is there: every id of S that P held is in T, and (mark) a row P held
 *   unmarked is not marked;
 * - no row the source never had, none newer than the source's last version of it;
 * - after a run that exited 0 (a complete read): every id of S is in T, unmarked; every other row of T
 *   (a record gone) is deleted, or (mark) marked, unless it went during the run (the run may have read it).
 */
export const deleteViolations = ({ previous, target, truth, gone, removed, action, completed }) => {
  const out = []
  const deleted = []
  const marked = []
  for (const [id, before] of previous) {
    if (!truth.has(id)) continue
    const after = target.get(id)
    if (after === undefined) deleted.push(id)
    else if (action === "mark" && !before.marked && after.marked) marked.push(id)
  }
  if (deleted.length > 0) out.push(`${deleted.length} row(s) deleted whose record the source still has (${sample(deleted)})`)
  if (marked.length > 0) out.push(`${marked.length} row(s) marked deleted whose record the source still has (${sample(marked)})`)
  const invented = []
  const newer = []
  for (const [id, row] of target) {
    const r = truth.get(id) ?? gone.get(id)
    if (r === undefined) invented.push(id)
    else if (row.version > r.version) newer.push(id)
  }
  if (invented.length > 0) out.push(`${invented.length} row(s) the source never had (${sample(invented)})`)
  if (newer.length > 0) out.push(`${newer.length} row(s) newer than the source (${sample(newer)})`)
  if (!completed) return out
  const absent = [...truth.keys()].filter((id) => target.get(id) === undefined || target.get(id).marked === true)
  if (absent.length > 0) out.push(`the run exited 0 but ${absent.length} record(s) of the source are not in the table${action === "mark" ? " unmarked" : ""} (${sample(absent)})`)
  const left = [...target].filter(([id, row]) => !truth.has(id) && !removed.has(id) && row.marked !== true).map(([id]) => id)
  if (left.length > 0) out.push(`the run exited 0 but ${left.length} row(s) of records gone before it are still ${action === "mark" ? "unmarked" : "there"} (${sample(left)})`)
  return out
}
