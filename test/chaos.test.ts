/**
 * The short form of `npm run chaos` (scripts/chaos.mjs): 40 seeded kill -9s at random moments and
 * random failpoints over real runs of the bin, shared by seven streams: merge on both checkpoint stores
 * and both source orders, `write: replace`, and `deletes: { detect: missing }` with `action: delete`
 * and `mark`; a source that changes between and during runs (and loses records, for the last three),
 * then a clean run compared to the source's truth. Then the replace and deletes checks themselves, on
 * tables made by hand: each kind of wrong table they must flag.
 * Against the server in FERRY_TEST_DATABASE_URL (a database of its own) or an embedded one.
 * FERRY_CHAOS_SEED replays a seed; the long form's result is in docs/GUARANTEES.md.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { deleteViolations, replaceViolations, type TargetRow } from "./support/consistency.js"
import type { TruthRecord } from "./support/truth-api.js"

const seed = process.env.FERRY_CHAOS_SEED || "40"
const KILLS = 40

describe("chaos: seeded kill -9s over real runs, then the table compared to the source's truth", () => {
  it(`${KILLS} kills landed, 0 missing, 0 extra, 0 stale, the checkpoint consistent after every kill`, async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "..", "scripts", "chaos.mjs"), "--kills", String(KILLS), "--seed", seed], {
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve))
    console.log(out.trim())
    expect(code, out).toBe(0)
    expect(out).toMatch(new RegExp(`^chaos: PASS seed ${seed}: ${KILLS} kills landed in \\d+ runs`, "m"))
  }, 300_000)
})

/** a record of the truth source, and the row T holds of it */
const rec = (id: string, version: number): TruthRecord => ({
  id,
  name: `${id} v${version}`,
  amount: version,
  version,
  updated_at: new Date(Date.UTC(2024, 0, 1) + version * 1000).toISOString()
})
const row = (r: TruthRecord, marked?: boolean): TargetRow => ({
  version: r.version,
  ms: Date.parse(r.updated_at),
  name: r.name,
  amount: r.amount,
  ...(marked === undefined ? {} : { marked })
})
const table = (...rows: Array<[TruthRecord, boolean?]>) => new Map(rows.map(([r, marked]) => [r.id, row(r, marked)]))

describe("the chaos checks of write: replace and detect: missing catch what they are meant to", () => {
  // the run served a1 twice (changed mid-run) and b2; c is gone from the source
  const previous = table([rec("a", 1)], [rec("b", 1)], [rec("c", 1)])
  const served = new Map([["a", [rec("a", 1), rec("a", 2)]], ["b", [rec("b", 2)]]])
  const replace = (target: Map<string, TargetRow>, completed = false) => replaceViolations({ previous, target, served, completed })

  it("replace: the old table or the run's read (any version it served) holds; a mix, an empty table or a row not read does not", () => {
    expect(replace(previous)).toEqual([])
    expect(replace(table([rec("a", 1)], [rec("b", 2)]))).toEqual([])
    expect(replace(table([rec("a", 2)], [rec("b", 2)]), true)).toEqual([])
    expect(replace(previous, true)).toHaveLength(1) // exited 0 but not swapped
    expect(replace(new Map())).toHaveLength(1) // emptied
    expect(replace(table([rec("a", 2)], [rec("b", 1)]))).toHaveLength(1) // a mix: b at the old version
    expect(replace(table([rec("a", 2)]))).toHaveLength(1) // b served but absent: half a table
    expect(replace(table([rec("a", 2)], [rec("b", 2)], [rec("c", 1)]))).toHaveLength(1) // c not read
    expect(replace(table([rec("a", 3)], [rec("b", 2)]))).toHaveLength(1) // a version never served
  })

  it("detect: missing: a kill never deletes or marks a record the source has; a run that exited 0 deletes (marks) the records gone", () => {
    const truth = new Map([["a", rec("a", 2)], ["b", rec("b", 1)]])
    const gone = new Map([["c", rec("c", 1)], ["d", rec("d", 3)]])
    const check = (action: "delete" | "mark", before: Map<string, TargetRow>, target: Map<string, TargetRow>, completed = false, removed = new Set<string>()) =>
      deleteViolations({ previous: before, target, truth, gone, removed, action, completed })
    const p = table([rec("a", 1)], [rec("b", 1)], [rec("c", 1)])
    expect(check("delete", p, p)).toEqual([])
    expect(check("delete", p, table([rec("a", 1)], [rec("b", 1)]))).toEqual([])
    expect(check("delete", p, table([rec("a", 2)], [rec("b", 1)]), true)).toEqual([])
    expect(check("delete", p, table([rec("a", 1)], [rec("c", 1)]))).toHaveLength(1) // b deleted, the source has it
    expect(check("delete", p, table([rec("a", 1)], [rec("b", 1)], [rec("c", 1)], [rec("e", 1)]))).toHaveLength(1) // e never existed
    expect(check("delete", p, table([rec("a", 3)], [rec("b", 1)]))).toHaveLength(1) // newer than the source
    expect(check("delete", p, p, true)).toHaveLength(1) // exited 0, c still there
    expect(check("delete", p, p, true, new Set(["c"]))).toEqual([]) // c went during the run: it may have been read
    const m = table([rec("a", 1), false], [rec("b", 1), false], [rec("c", 1), false])
    expect(check("mark", m, table([rec("a", 1), false], [rec("b", 1), false], [rec("c", 1), true]), true)).toEqual([])
    expect(check("mark", m, table([rec("a", 1), false], [rec("b", 1), true], [rec("c", 1), false]))).toHaveLength(1) // b marked
    expect(check("mark", m, m, true)).toHaveLength(1) // exited 0, c unmarked
  })
})
