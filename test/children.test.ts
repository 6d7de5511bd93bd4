/**
 * `target.children` (issue 13 item 6), through the bin, on a server and on the embedded database:
 *
 * - an order's line items go to a child table keyed by (parent_id, sku), each row carrying its parent's
 *   key as `parent_id` (the parent column's type);
 * - an update that changes the items replaces them (an item gone from the list is gone); a record whose
 *   own columns are the same but whose items changed is an update too (the `_children` digest);
 * - an unchanged re-read leaves the child rows untouched (xmin and ctid the same);
 * - an older version of a record (its cursor older than the stored one) never replaces newer children;
 * - a list without its own key is keyed by position (`_index`); a missing or null list is no children
 *   (a parent whose list became null has none left);
 * - an element that does not decode, a duplicate child key or a non-list quarantines the whole record
 *   with a reason naming the path and index: no parent without some of its children;
 * - children with write: replace is a 78 naming target.children;
 * - a column added to a child's columns is added to the child table (`schema.change` naming it), its
 *   rows filled from the parent's record column as the decoder converts the stored record (the same
 *   values a --full-refresh writes), or left NULL with the --full-refresh hint without one; a type
 *   change of a child column is a 78 with the SQL, and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Api, type ApiRecord, startApi } from "./support/api.js"
import { type CliResult, configDir, ferry, summaries } from "./support/cli.js"
import { fileDatabase } from "./support/pg.js"

const db = fileDatabase("ferry_children")
let api: Api

beforeAll(async () => {
  api = await startApi([], { pageSize: 3 })
})
afterAll(async () => {
  await api?.close()
})

const itemColumns = "{ sku: text, qty: integer, price: { type: numeric, from: price.amount } }"

const config = (name: string, options: { write?: string; maxInvalid?: number; record?: boolean; items?: string } = {}) =>
  configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${api.url}/link
      records: data
      pagination: { type: link }
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }
    target:
      table: ${name}
      primaryKey: [id]
      ${options.write === undefined ? "" : `write: ${options.write}`}
      columns: { id: text, name: text, updated_at: timestamptz }
      ${options.record === true ? "record: _record" : ""}
      children:
        - { path: items, table: ${name}_items, primaryKey: [sku], columns: ${options.items ?? itemColumns} }
        - { path: notes, table: ${name}_notes, columns: { text: text } }
    maxInvalid: ${options.maxInvalid ?? 0}
`)

const run = async (dir: string, args: ReadonlyArray<string> = []): Promise<CliResult> =>
  ferry(["run", ...args], { cwd: dir, env: { DATABASE_URL: db.url } })

const only = (result: CliResult) => {
  expect(result.code, result.stderr.slice(-2000)).toBe(0)
  const all = summaries(result)
  expect(all).toHaveLength(1)
  const s = all[0]!
  expect(s.fetched).toBe(s.inserted + s.updated + s.unchanged + s.quarantined + s.already_quarantined)
  return s
}

const at = (minute: number) => new Date(Date.UTC(2024, 0, 1, 0, minute)).toISOString()

const order = (n: number, minute: number, items: unknown, notes?: unknown): ApiRecord => ({
  id: `o${n}`,
  name: `order ${n}`,
  amount: 0,
  updated_at: at(minute),
  items,
  ...(notes === undefined ? {} : { notes })
})

const item = (sku: string, qty: number, price?: number) => ({ sku, qty, ...(price === undefined ? {} : { price: { amount: price } }) })

const items = async (table: string) =>
  db.query(`SELECT parent_id, sku, qty, price::text AS price FROM "${table}_items" ORDER BY parent_id, sku`)

/** each child row's physical version: unchanged when the row was not rewritten */
const versions = async (table: string) =>
  Object.fromEntries(
    (await db.query(`SELECT parent_id || '/' || sku AS k, xmin::text || ctid::text AS v FROM "${table}_items"`)).map((r) => [r.k, r.v])
  )

describe("target.children", () => {
  it("line items: written with the order, replaced when it changes, untouched when it does not", async () => {
    api.records = [
      order(1, 1, [item("a", 1, 2.5), item("b", 2)]),
      order(2, 2, [item("a", 5)]),
      order(3, 3, []),
      order(4, 4, null),
      order(5, 5, [item("c", 1)])
    ]
    const dir = config("orders")
    expect(only(await run(dir))).toMatchObject({ fetched: 5, inserted: 5, quarantined: 0 })
    expect(await items("orders")).toEqual([
      { parent_id: "o1", sku: "a", qty: 1, price: "2.5" },
      { parent_id: "o1", sku: "b", qty: 2, price: null },
      { parent_id: "o2", sku: "a", qty: 5, price: null },
      { parent_id: "o5", sku: "c", qty: 1, price: null }
    ])
    const [{ pk, parentType }] = await db.query(
      `SELECT array_to_string(ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a
         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'orders_items'::regclass
         AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)), ',') AS pk,
         (SELECT data_type FROM information_schema.columns WHERE table_name = 'orders_items' AND column_name = 'parent_id') AS "parentType"`
    )
    expect(pk).toBe("parent_id,sku")
    expect(parentType).toBe("text")

    // a full re-read of the same records: nothing rewritten, parent or child
    const before = await versions("orders")
    expect(only(await run(dir, ["--full-refresh"]))).toMatchObject({ fetched: 5, inserted: 0, updated: 0, unchanged: 5 })
    expect(await versions("orders")).toEqual(before)

    // order 1 changes its items (b gone, d new, a's qty); order 2 changes its items only, same cursor
    api.records[0] = order(1, 10, [item("a", 3, 2.5), item("d", 1)])
    api.records[1] = order(2, 2, [item("a", 6)])
    // order 5's list becomes null: it has no children any more
    api.records[4] = order(5, 11, null)
    expect(only(await run(dir, ["--full-refresh"]))).toMatchObject({ fetched: 5, updated: 3, unchanged: 2 })
    expect(await items("orders")).toEqual([
      { parent_id: "o1", sku: "a", qty: 3, price: "2.5" },
      { parent_id: "o1", sku: "d", qty: 1, price: null },
      { parent_id: "o2", sku: "a", qty: 6, price: null }
    ])

    // an older version of order 1 (cursor before the stored one) with other items: skipped, items kept
    const kept = await versions("orders")
    api.records[0] = order(1, 5, [item("z", 9)])
    expect(only(await run(dir, ["--full-refresh"]))).toMatchObject({ fetched: 5, updated: 0, unchanged: 5 })
    expect(await versions("orders")).toEqual(kept)
    expect((await items("orders")).map((r) => `${r.parent_id}/${r.sku}`)).toEqual(["o1/a", "o1/d", "o2/a"])
  })

  it("a list without its own key is keyed by position (_index)", async () => {
    api.records = [order(1, 1, [], [{ text: "first" }, { text: "second" }, { text: "first" }])]
    const dir = config("noted")
    only(await run(dir))
    expect(await db.query(`SELECT parent_id, _index, text FROM noted_notes ORDER BY _index`)).toEqual([
      { parent_id: "o1", _index: 0, text: "first" },
      { parent_id: "o1", _index: 1, text: "second" },
      { parent_id: "o1", _index: 2, text: "first" }
    ])
    api.records = [order(1, 2, [], [{ text: "only" }])]
    only(await run(dir))
    expect(await db.query(`SELECT parent_id, _index, text FROM noted_notes`)).toEqual([{ parent_id: "o1", _index: 0, text: "only" }])
  })

  it("an element that does not decode quarantines the whole record, never a parent without children", async () => {
    api.records = [
      order(1, 1, [item("a", 1)]),
      order(2, 2, [item("a", 1), { sku: "b", qty: "lots" }]),
      order(3, 3, [item("a", 1), item("a", 2)]),
      order(4, 4, { sku: "a" }),
      order(5, 5, [item("a", 1), 7])
    ]
    const result = await run(config("broken", { maxInvalid: 10 }))
    expect(only(result)).toMatchObject({ fetched: 5, inserted: 1, quarantined: 4 })
    expect((await db.query(`SELECT id FROM broken`)).map((r) => r.id)).toEqual(["o1"])
    expect((await db.query(`SELECT parent_id FROM broken_items`)).map((r) => r.parent_id)).toEqual(["o1"])
    const reasons = (await db.query(`SELECT reason FROM ferry.quarantine WHERE stream = 'broken' ORDER BY id`)).map((r) => r.reason)
    expect(reasons).toHaveLength(4)
    expect(reasons[0]).toMatch(/^items\[1\]: qty: /)
    expect(reasons[1]).toMatch(/^items\[1\]: the same key \["a"\] as items\[0\]/)
    expect(reasons[2]).toMatch(/^items: expected a list/)
    expect(reasons[3]).toMatch(/^items\[1\]: expected an object/)
  })

  it("a child row Postgres refuses sets the whole record aside: its parent keeps its old version and items", async () => {
    api.records = [order(1, 1, [item("a", 1)]), order(2, 2, [item("a", 1)])]
    const dir = config("checked", { maxInvalid: 10 })
    only(await run(dir))
    // a rule of the user's that Ferry's converters do not know: Postgres refuses the row (a data error)
    await db.query(`ALTER TABLE checked_items ADD CONSTRAINT small CHECK (qty < 100)`)
    api.records = [order(1, 3, [item("a", 500), item("b", 1)]), order(2, 4, [item("b", 2)])]
    expect(only(await run(dir))).toMatchObject({ fetched: 2, updated: 1, quarantined: 1 })
    expect(await db.query(`SELECT id, updated_at FROM checked ORDER BY id`)).toEqual([
      { id: "o1", updated_at: new Date(at(1)) },
      { id: "o2", updated_at: new Date(at(4)) }
    ])
    expect((await items("checked")).map((r) => `${r.parent_id}/${r.sku}/${r.qty}`)).toEqual(["o1/a/1", "o2/b/2"])
    const [{ reason }] = await db.query(`SELECT reason FROM ferry.quarantine WHERE stream = 'checked'`)
    expect(reason).toContain("small")
  })

  it("a column added to a child is added and filled from the parent's record column, as the decoder converts it", async () => {
    api.records = [
      order(1, 1, [{ ...item("a", 1), color: "red", size: "12" }, { ...item("b", 2), color: 7, size: "large" }]),
      order(2, 2, [{ ...item("a", 5), size: 3.0 }], [{ text: "n" }]),
      order(3, 3, null)
    ]
    only(await run(config("grown", { record: true })))
    const columns = "{ sku: text, qty: integer, price: { type: numeric, from: price.amount }, color: text, size: integer }"
    const grown = config("grown", { record: true, items: columns, maxInvalid: 10 })
    const dry = await run(grown, ["--dry-run"])
    expect(dry.code, dry.stderr.slice(-2000)).toBe(0)
    expect(dry.logs.filter((l) => l.msg === "schema.change").map((l) => [l.table, l.column, l.dry_run])).toEqual([
      ["public.grown_items", "color", true],
      ["public.grown_items", "size", true]
    ])
    const before = await items("grown")

    // the source has nothing new: only prepare's fill can give the old rows their values
    const kept = api.records
    api.records = []
    const second = await run(grown)
    expect(only(second)).toMatchObject({ fetched: 0 })
    expect(second.logs.filter((l) => l.msg === "schema.change").map((l) => ({ ...l, time: undefined, level: undefined }))).toEqual([
      expect.objectContaining({ table: "public.grown_items", column: "color", type: "text", filled: 2, unfit: 0 }),
      // "large" is no integer (unfit, NULL); "12" and 3.0 are, as the decoder converts them
      expect.objectContaining({ table: "public.grown_items", column: "size", type: "integer", filled: 2, unfit: 1 })
    ])
    const filled = await db.query(`SELECT parent_id, sku, color, size FROM grown_items ORDER BY parent_id, sku`)
    expect(filled).toEqual([
      { parent_id: "o1", sku: "a", color: "red", size: 12 },
      { parent_id: "o1", sku: "b", color: "7", size: null },
      { parent_id: "o2", sku: "a", color: null, size: 3 }
    ])
    expect(await items("grown")).toEqual(before)

    // a full re-read: o2 (its digest covers the new columns) is rewritten with the values the fill gave; o1,
    // whose "large" the decoder refuses, is now an invalid record (its rows keep what they have)
    api.records = kept
    const again = await run(grown, ["--full-refresh"])
    expect(only(again)).toMatchObject({ fetched: 3, updated: 1, unchanged: 1, quarantined: 1 })
    expect(again.logs.filter((l) => l.msg === "schema.change")).toEqual([])
    expect(await db.query(`SELECT parent_id, sku, color, size FROM grown_items ORDER BY parent_id, sku`)).toEqual(filled)
  })

  it("without a record column the child's new column stays NULL, with the --full-refresh hint", async () => {
    api.records = [order(1, 1, [{ ...item("a", 1), color: "red" }])]
    only(await run(config("plain")))
    const grown = config("plain", { items: "{ sku: text, qty: integer, color: text }" })
    // nothing re-read: the stored row keeps NULL
    api.records = []
    const second = await run(grown)
    const [change] = only(second) && second.logs.filter((l) => l.msg === "schema.change")
    expect(change).toMatchObject({ table: "public.plain_items", column: "color", filled: null })
    expect(change!.hint).toContain("--full-refresh")
    expect(await db.query(`SELECT color FROM plain_items`)).toEqual([{ color: null }])
    api.records = [order(1, 1, [{ ...item("a", 1), color: "red" }])]
    expect(only(await run(grown, ["--full-refresh"]))).toMatchObject({ updated: 1 })
    expect(await db.query(`SELECT color FROM plain_items`)).toEqual([{ color: "red" }])
  })

  it("a type change in a child's column is 78 with the SQL to run, and changes nothing", async () => {
    api.records = [order(1, 1, [item("a", 1)])]
    only(await run(config("retyped")))
    const result = await run(config("retyped", { items: "{ sku: text, qty: text, added: text }" }))
    expect(result.code).toBe(78)
    expect(result.stderr).not.toMatch(/\n\s+at /)
    const [summary] = summaries(result)
    expect(summary!.error).toContain(`column "qty" is integer, the stream needs text`)
    expect(summary!.error).toContain(
      `ALTER TABLE "public"."retyped_items" ADD COLUMN "added" text; ` +
        `ALTER TABLE "public"."retyped_items" ALTER COLUMN "qty" TYPE text USING "qty"::text;`
    )
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'retyped_items' AND column_name = 'added'`)
    expect(n).toBe(0)
  })

  it("with write: replace: 78 naming target.children, nothing created", async () => {
    api.records = [order(1, 1, [])]
    const dir = configDir(
      (await import("node:fs")).readFileSync(`${config("swapped")}/ferry.config.yaml`, "utf8")
        .replace(/\s+incremental: .*\n/, "\n").replace("table: swapped\n", "table: swapped\n      write: replace\n")
    )
    const result = await run(dir)
    expect(result.code).toBe(78)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.logs[0]!.msg).toContain("streams[0].target.children")
    const [{ present }] = await db.query(`SELECT to_regclass('public.swapped') IS NOT NULL AS present`)
    expect(present).toBe(false)
  })
})
