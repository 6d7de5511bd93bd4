/**
 * PgSink and Database against a real PostgreSQL (a fresh database for this file): DDL with quoted
 * identifiers, verification of an existing table, the idempotent never-older upsert (no new row
 * version for unchanged rows), rows Postgres refuses, transactions, the advisory lock, quarantine
 * and runs, and connection failures that name the host but never the password.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Either, Exit, FastCheck as fc, Layer, Redacted, Scope } from "effect"
import * as net from "node:net"
import * as CopyIn from "../src/sink/postgres/CopyIn.js"
import * as Database from "../src/postgres/Database.js"
import { DatabaseError, LockHeld, TargetMismatch } from "../src/domain/Errors.js"
import * as PgSink from "../src/sink/postgres/PgSink.js"
import { Sink } from "../src/Sink.js"
import type { CursorType, Row, StreamSpec, TargetSpec } from "../src/domain/StreamSpec.js"
import { serverOnly, TestDb, usingServer } from "./support/pg.js"
import { column as col, incremental, streamSpec } from "./support/streams.js"

/** one pool and one sink for the file; each test writes its own tables */
const sinkLayer = PgSink.layer().pipe(
  Layer.provideMerge(TestDb.sqlClient({ maxConnections: 4 })),
  Layer.provideMerge(TestDb.layer("ferry_sink"))
)

const spec = (target: Partial<TargetSpec> & { table: string }, cursorType: CursorType = "timestamp"): StreamSpec =>
  streamSpec({
    name: target.table,
    source: { incremental: incremental({ cursorField: "updated_at", cursorType }) },
    target: {
      primaryKey: ["id"],
      columns: [col("id", "text"), col("status", "text"), col("amount", "numeric"), col("updated_at", "timestamptz")],
      cursorColumn: "updated_at",
      ...target
    },
    decode: () => Either.left("decode is not used by the sink")
  })

const row = (id: string, status: string, updatedAt: string, amount: unknown = 1): Row => ({
  key: JSON.stringify([id]),
  cursor: updatedAt,
  values: { id, status, amount, updated_at: updatedAt }
})

/** `effect` in a transaction of stream `s` as a run writes one: holding the stream's lock and lease */
const locked = <A, E, R>(s: StreamSpec, effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Sink, (sink) => Effect.scoped(Effect.zipRight(sink.lock(s), sink.transaction(s, effect))))

layer(sinkLayer, { excludeTestServices: true })((it) => {
  describe("PgSink.prepare", () => {
    it.effect("creates Ferry's tables and a target with quoted, mixed-case and reserved identifiers", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({
          schema: "Sales Data",
          table: "Orders \"2024\"",
          primaryKey: ["Order Id"],
          columns: [col("Order Id", "text"), col("select", "integer"), col("updated_at", "timestamptz")],
          cursorColumn: "updated_at"
        })
        yield* sink.prepare(s)
        const tables = yield* TestDb.query(`SELECT table_schema, table_name FROM information_schema.tables
                    WHERE table_schema IN ('ferry', 'Sales Data') ORDER BY 1, 2`)
        expect(tables).toEqual([
          { table_schema: "Sales Data", table_name: "Orders \"2024\"" },
          { table_schema: "ferry", table_name: "fields" },
          { table_schema: "ferry", table_name: "leases" },
          { table_schema: "ferry", table_name: "migrations" },
          { table_schema: "ferry", table_name: "quarantine" },
          { table_schema: "ferry", table_name: "runs" },
          { table_schema: "ferry", table_name: "state" }
        ])
        const cols = yield* TestDb.query(`SELECT column_name, data_type FROM information_schema.columns
                    WHERE table_schema = 'Sales Data' ORDER BY ordinal_position`)
        expect(cols).toEqual([
          { column_name: "Order Id", data_type: "text" },
          { column_name: "select", data_type: "integer" },
          { column_name: "updated_at", data_type: "timestamp with time zone" }
        ])
        const r = yield* sink.write(s, [{
          key: "[\"a\"]",
          cursor: "2024-01-01T00:00:00Z",
          values: { "Order Id": "a", select: 7, updated_at: "2024-01-01T00:00:00Z" }
        }])
        expect(r).toMatchObject({ inserted: 1, updated: 0, unchanged: 0, rejected: [] })
        const stored = yield* TestDb.query(`SELECT "Order Id", "select" FROM "Sales Data"."Orders ""2024"""`)
        expect(stored).toEqual([{ "Order Id": "a", select: 7 }])

        // re-prepare, twice at once, is a no-op
        const oid = yield* TestDb.query(`SELECT '"Sales Data"."Orders ""2024"""'::regclass::oid AS oid`)
        yield* Effect.all([sink.prepare(s), sink.prepare(s)], { concurrency: 2 })
        const oidAfter = yield* TestDb.query(`SELECT '"Sales Data"."Orders ""2024"""'::regclass::oid AS oid`)
        expect(oidAfter).toEqual(oid)
        const count = yield* TestDb.query(`SELECT count(*)::int AS n FROM "Sales Data"."Orders ""2024"""`)
        expect(count).toEqual([{ n: 1 }])
      }))

    it.effect("accepts an existing table with equivalent type spellings and extra nullable columns", () =>
      Effect.gen(function*() {
        yield* TestDb.query(`CREATE TABLE public.compatible (id int8 PRIMARY KEY, n int4, f float8,
                    at timestamp with time zone, extra text, note text NOT NULL DEFAULT '')`)
        const sink = yield* Sink
        yield* sink.prepare(spec({
          table: "compatible",
          columns: [col("id", "bigint"), col("n", "integer"), col("f", "double precision"), col("at", "timestamptz")],
          cursorColumn: "at"
        }))
      }))

    it.effect("an incompatible existing table is a TargetMismatch naming each problem", () =>
      Effect.gen(function*() {
        yield* TestDb.query(`CREATE TABLE public.legacy (id integer, status integer, updated_at timestamptz, code text NOT NULL,
                    PRIMARY KEY (id, updated_at))`)
        const sink = yield* Sink
        const error = yield* Effect.flip(sink.prepare(spec({ table: "legacy" })))
        expect(error).toBeInstanceOf(TargetMismatch)
        const problems = (error as TargetMismatch).problems
        expect(problems).toEqual([
          `column "amount" is missing (the stream needs numeric)`,
          `column "id" is integer, the stream needs text`,
          `column "status" is integer, the stream needs text`,
          `column "code" is NOT NULL without a default, and the stream does not write it`,
          `the primary key is ("id", "updated_at"), the stream needs ("id")`
        ])
        // the statements that make it fit, in an order that works
        expect((error as TargetMismatch).sql).toEqual([
          `ALTER TABLE "public"."legacy" ADD COLUMN "amount" numeric;`,
          `ALTER TABLE "public"."legacy" ALTER COLUMN "id" TYPE text USING "id"::text;`,
          `ALTER TABLE "public"."legacy" ALTER COLUMN "status" TYPE text USING "status"::text;`,
          `ALTER TABLE "public"."legacy" ALTER COLUMN "code" DROP NOT NULL;`,
          `ALTER TABLE "public"."legacy" DROP CONSTRAINT "legacy_pkey", ADD PRIMARY KEY ("id");`
        ])
        expect(error.message).toContain("public.legacy")
        expect(error.exitCode).toBe(78)
        // nothing was changed: no column added
        const cols = yield* TestDb.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'legacy'`)
        expect(cols.map((c) => c.column_name)).not.toContain("amount")
        // and the SQL it printed makes the table fit
        for (const statement of (error as TargetMismatch).sql!) yield* TestDb.query(statement)
        yield* sink.prepare(spec({ table: "legacy" }))
      }))

    it.effect("a column the stream lists and the table lacks is added, filled from the record column", () =>
      Effect.gen(function*() {
        yield* TestDb.query(`CREATE TABLE public.grows (id text PRIMARY KEY, raw jsonb)`)
        yield* TestDb.query(`INSERT INTO public.grows VALUES ('a', '{"n": 1234567890123456789, "d": "2024-02-30"}'),
                    ('b', '{"n": "x", "d": "2024-02-01"}'), ('c', NULL), ('d', '{"n": 1234567890123456789}')`)
        const sink = yield* Sink
        const grown = spec({
          table: "grows",
          columns: [col("id", "text"), col("raw", "jsonb"), col("n", "bigint"), col("d", "date")],
          cursorColumn: undefined,
          record: "raw"
        })
        const prepared = yield* sink.prepare(grown)
        // "2024-02-30" passes the decoder's check and Postgres refuses it: that row keeps NULL in both
        expect(prepared).toEqual({
          state: "filled",
          changes: [
            { table: "public.grows", column: "n", type: "bigint", filled: 1, unfit: 2 },
            { table: "public.grows", column: "d", type: "date", filled: 1, unfit: 1 }
          ]
        })
        const rows = yield* TestDb.query(`SELECT id, n::text AS n, d::text AS d FROM grows ORDER BY id`)
        expect(rows).toEqual([
          { id: "a", n: null, d: null },
          { id: "b", n: null, d: "2024-02-01" },
          { id: "c", n: null, d: null },
          { id: "d", n: "1234567890123456789", d: null }
        ])
        expect((yield* sink.prepare(grown)).changes).toEqual([])
      }))
  })

  describe("PgSink.write", () => {
    it.effect("inserts, then reports a re-write as unchanged without a new row version", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "idempotent" })
        yield* sink.prepare(s)
        const rows = [row("a", "new", "2024-01-01T00:00:00Z"), row("b", "new", "2024-01-01T00:00:00Z", "2.50")]
        expect(yield* locked(s, sink.write(s, rows))).toEqual({ inserted: 2, updated: 0, unchanged: 0, rejected: [] })
        const before = yield* TestDb.query(`SELECT id, xmin::text AS xmin FROM idempotent ORDER BY id`)
        // the same content, with the timestamp spelled differently, is the same row
        const again = [row("a", "new", "2024-01-01T00:00:00.000Z"), row("b", "new", "2024-01-01T00:00:00Z", 2.5)]
        expect(yield* locked(s, sink.write(s, again))).toEqual({ inserted: 0, updated: 0, unchanged: 2, rejected: [] })
        const after = yield* TestDb.query(`SELECT id, xmin::text AS xmin FROM idempotent ORDER BY id`)
        expect(after).toEqual(before)
        // a changed row is updated, and gets a new version
        expect(yield* sink.write(s, [row("a", "paid", "2024-01-02T00:00:00Z")])).toEqual({
          inserted: 0,
          updated: 1,
          unchanged: 0,
          rejected: []
        })
        const changed = yield* TestDb.query(`SELECT id, xmin::text AS xmin FROM idempotent ORDER BY id`)
        expect(changed[0].xmin).not.toBe(before[0].xmin)
        expect(changed[1].xmin).toBe(before[1].xmin)
      }))

    it.effect("an older cursor never overwrites a newer one; a newer one does", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "monotonic" })
        yield* sink.prepare(s)
        yield* sink.write(s, [row("a", "v2", "2024-01-02T00:00:00Z")])
        expect(yield* sink.write(s, [row("a", "v1", "2024-01-01T00:00:00Z")])).toMatchObject({ updated: 0, unchanged: 1 })
        expect(yield* TestDb.query(`SELECT status FROM monotonic`)).toEqual([{ status: "v2" }])
        expect(yield* sink.write(s, [row("a", "v3", "2024-01-03T00:00:00Z")])).toMatchObject({ updated: 1, unchanged: 0 })
        expect(yield* TestDb.query(`SELECT status FROM monotonic`)).toEqual([{ status: "v3" }])
      }))

    it.effect("duplicates in one batch keep the greatest cursor, the later one on ties", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "dupes" })
        yield* sink.prepare(s)
        const result = yield* sink.write(s, [
          row("a", "first", "2024-01-01T00:00:00Z"),
          row("a", "newest", "2024-01-03T00:00:00Z"),
          row("a", "middle", "2024-01-02T00:00:00Z"),
          row("b", "tie-1", "2024-01-01T00:00:00Z"),
          row("b", "tie-2", "2024-01-01T00:00:00Z")
        ])
        expect(result).toEqual({ inserted: 2, updated: 0, unchanged: 3, rejected: [] })
        expect(yield* TestDb.query(`SELECT id, status FROM dupes ORDER BY id`)).toEqual([
          { id: "a", status: "newest" },
          { id: "b", status: "tie-2" }
        ])
      }))

    it.effect("20,000 rows x 10 columns in one write (over the 65,535 bind-parameter limit), chunked at 512 KiB", () =>
      Effect.gen(function*() {
        const columns = [col("id", "bigint"), ...Array.from({ length: 9 }, (_, i) => col(`c${i}`, "text"))]
        const s = spec({ table: "wide", columns, cursorColumn: undefined })
        const rows: Array<Row> = Array.from({ length: 20_000 }, (_, n) => ({
          key: JSON.stringify([n]),
          cursor: undefined,
          values: Object.fromEntries([["id", n], ...Array.from({ length: 9 }, (_, i) => [`c${i}`, `value ${n}/${i}`])])
        }))
        const sink = yield* Sink
        yield* sink.prepare(s)
        expect(yield* locked(s, sink.write(s, rows))).toEqual({
          inserted: 20_000,
          updated: 0,
          unchanged: 0,
          rejected: []
        })
        expect(yield* TestDb.query(`SELECT count(*)::int AS n, max(c8) AS m FROM wide`)).toEqual([
          { n: 20_000, m: "value 9999/8" }
        ])
        expect(yield* sink.write(s, rows)).toMatchObject({ inserted: 0, updated: 0, unchanged: 20_000 })
      }).pipe(Effect.provide(PgSink.layer({ maxChunkBytes: 512 * 1024 }))))

    it.effect("rows Postgres refuses come back in rejected; the others are written in the same transaction", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const sql = yield* SqlClient
        const s = spec({
          table: "refused",
          columns: [col("id", "text"), col("qty", "integer"), col("note", "text"), col("updated_at", "timestamptz")]
        })
        yield* sink.prepare(s)
        const good = (id: string): Row => ({
          key: JSON.stringify([id]),
          cursor: "2024-01-01T00:00:00Z",
          values: { id, qty: 1, note: "ok", updated_at: "2024-01-01T00:00:00Z" }
        })
        const notANumber: Row = { ...good("x"), key: "[\"x\"]", values: { ...good("x").values, qty: "abc" } }
        const nul: Row = { ...good("y"), key: "[\"y\"]", values: { ...good("y").values, note: "a\u0000b" } }
        const rows = [good("a"), notANumber, good("b"), good("c"), nul, good("d")]
        const result = yield* locked(s, Effect.gen(function*() {
          const r = yield* sink.write(s, rows)
          // the transaction is still usable after the refused rows
          yield* sql.unsafe(`INSERT INTO refused (id, qty) VALUES ('after', 2)`)
          return r
        }))
        expect(result.inserted).toBe(4)
        expect(result.unchanged).toBe(0)
        expect(result.rejected.map((r) => r.row.key)).toEqual(["[\"x\"]", "[\"y\"]"])
        expect(result.rejected[0].reason).toContain("invalid input syntax for type integer")
        expect(result.rejected[0].reason).toContain("22P02")
        expect(result.rejected[1].reason).toMatch(/Unicode|\\u0000/)
        expect(yield* TestDb.query(`SELECT id FROM refused ORDER BY id`)).toEqual(
          ["a", "after", "b", "c", "d"].map((id) => ({ id }))
        )
      }))

    it.effect("a non-data error fails the write with a DatabaseError carrying the SQLSTATE", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "dropped_later" })
        yield* sink.prepare(s)
        yield* TestDb.query(`DROP TABLE dropped_later`)
        const error = yield* Effect.flip(sink.write(s, [row("a", "x", "2024-01-01T00:00:00Z")]))
        expect(error).toBeInstanceOf(DatabaseError)
        expect(error.message).toContain("42P01")
        expect(error.message).toContain("public.dropped_later")
      }))
  })

  // COPY needs a server: PGlite's socket server has no COPY FROM STDIN (the embedded pass checks it is off)
  /** `rows` as `writeStaged` asks for them, counting how often it asks */
  const asked = (rows: ReadonlyArray<Row>) => {
    const give = Object.assign(() => {
      give.times++
      return rows
    }, { times: 0 })
    return give
  }

  describe("PgSink bulk path (COPY into a table that was empty when prepared)", () => {
    it.effect.skipIf(usingServer)("is off on the embedded database, which cannot COPY over its socket", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "bulk_embedded" })
        yield* sink.prepare(s)
        const rows = [row("a", "x", "2024-01-01T00:00:00Z")]
        const staged = sink.stage(s, rows)
        // not COPY text: the rows stay with the caller, and writeStaged upserts them
        expect(staged.holdsRows).toBe(false)
        expect(yield* locked(s, sink.writeStaged(s, [staged], () => rows))).toEqual({
          inserted: 1,
          updated: 0,
          unchanged: 0,
          rejected: []
        })
      }))

    /** one column of every type the bulk path encodes */
    const everyType = (table: string) =>
      spec({
        table,
        columns: [
          col("id", "text"),
          col("updated_at", "timestamptz"),
          col("t", "text"),
          col("i", "integer"),
          col("b", "bigint"),
          col("n", "numeric"),
          col("f", "double precision"),
          col("r", "real"),
          col("ok", "boolean"),
          col("ts", "timestamp"),
          col("d", "date"),
          col("u", "uuid"),
          col("doc", "jsonb")
        ]
      })

    const valuesRow = (values: Record<string, unknown>): Row => ({
      key: JSON.stringify([values.id]),
      cursor: values.updated_at as string,
      values
    })

    /** strings COPY's text format must carry exactly: its delimiters, escapes and null marker among them */
    const awkward = [
      "",
      "\\N",
      "\\",
      "tab\there",
      "line\nbreak",
      "carriage\rreturn",
      "back\\slash\\n",
      "\\t literally",
      "quote \" and ' and ,",
      "ünïcödé – ✓ 🚢",
      "  leading and trailing  ",
      "NULL",
      "\\.",
      "\\.\n"
    ]

    const contents = (table: string) =>
      TestDb.query(`SELECT to_jsonb(whole) - 'id' AS v, id FROM ${table} whole ORDER BY id`)

    it.effect.skipIf(serverOnly)("stores exactly what the upsert stores, for every column type and awkward text (500 generated rows)", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const text = fc.oneof(
          fc.constantFrom(...awkward),
          fc.string({ unit: "grapheme" }),
          fc.string({ unit: fc.constantFrom("\\", "\t", "\n", "\r", "N", ".", "a", "é", "😀") })
        ).filter((t) => !t.includes("\u0000"))
        const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown)
          .filter((v) => !JSON.stringify(v).includes("\\u0000"))
        const record = fc.record({
          t: fc.option(text, { nil: null }),
          i: fc.option(fc.integer(), { nil: null }),
          b: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String), { nil: null }),
          n: fc.option(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom("1e21", "-0.000001", "123456789012345678901234567890.5")), { nil: null }),
          f: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: null }),
          r: fc.option(fc.float({ noNaN: true, noDefaultInfinity: true }).map(Math.fround), { nil: null }),
          ok: fc.option(fc.boolean(), { nil: null }),
          ts: fc.option(fc.constantFrom("2024-02-29T23:59:59.123456Z", "1999-12-31 23:59:59", "2024-06-01T12:00:00+02:00"), { nil: null }),
          d: fc.option(fc.constantFrom("2024-02-29", "1970-01-01", "0001-01-01"), { nil: null }),
          u: fc.option(fc.uuid(), { nil: null }),
          doc: fc.option(fc.oneof(json, fc.constantFrom(...awkward)), { nil: null })
        })
        // a fixed seed: the same 500 rows every run, so a failure reproduces
        const generated = fc.sample(record, { seed: 20261125, numRuns: 500 })
        const rows = generated.map((values, i) =>
          valuesRow({ id: `r${String(i).padStart(3, "0")}`, updated_at: "2024-01-01T00:00:00Z", ...values })
        )
        const viaCopy = everyType("bulk_equal_copy")
        const viaUpsert = everyType("bulk_equal_upsert")
        yield* sink.prepare(viaCopy)
        const staged = sink.stage(viaCopy, rows)
        expect(staged.holdsRows).toBe(true)
        const given = asked(rows)
        expect(yield* locked(viaCopy, sink.writeStaged(viaCopy, [staged], given))).toEqual({
          inserted: rows.length,
          updated: 0,
          unchanged: 0,
          rejected: []
        })
        // COPYed: the rows were never asked for
        expect(given.times).toBe(0)
        yield* sink.prepare(viaUpsert)
        expect(yield* locked(viaUpsert, sink.write(viaUpsert, rows))).toMatchObject({ inserted: rows.length, rejected: [] })
        const copied = yield* contents("bulk_equal_copy")
        expect(copied).toHaveLength(rows.length)
        expect(copied).toEqual(yield* contents("bulk_equal_upsert"))
      }))

    it.effect.skipIf(serverOnly)("dedupes keys within a page like write, and counts the dropped duplicates as unchanged", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "bulk_dupes" })
        yield* sink.prepare(s)
        const rows = [
          row("a", "old", "2024-01-01T00:00:00Z"),
          row("a", "new", "2024-01-02T00:00:00Z"),
          row("b", "only", "2024-01-01T00:00:00Z")
        ]
        const given = asked(rows)
        expect(yield* locked(s, sink.writeStaged(s, [sink.stage(s, rows)], given))).toEqual({
          inserted: 2,
          updated: 0,
          unchanged: 1,
          rejected: []
        })
        expect(given.times).toBe(0)
        expect(yield* TestDb.query(`SELECT id, status FROM bulk_dupes ORDER BY id`)).toEqual([
          { id: "a", status: "new" },
          { id: "b", status: "only" }
        ])
      }))

    it.effect.skipIf(serverOnly)("is off for a table that has rows when prepared", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "bulk_not_empty" })
        yield* sink.prepare(s)
        yield* locked(s, sink.write(s, [row("a", "x", "2024-01-01T00:00:00Z")]))
        yield* sink.prepare(s)
        expect(sink.stage(s, [row("b", "x", "2024-01-01T00:00:00Z")]).holdsRows).toBe(false)
      }))

    it.effect.skipIf(serverOnly)("a key stored already refuses the whole bulk write, writes nothing, and turns the bulk path off", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "bulk_conflict" })
        yield* sink.prepare(s)
        const firstRows = asked([row("a", "first", "2024-01-01T00:00:00Z")])
        const secondRows = asked([row("b", "b", "2024-01-01T00:00:00Z"), row("a", "again", "2024-01-02T00:00:00Z")])
        const first = sink.stage(s, firstRows())
        const second = sink.stage(s, secondRows())
        firstRows.times = secondRows.times = 0
        const result = yield* locked(s, Effect.gen(function*() {
          expect(yield* sink.writeStaged(s, [first], firstRows)).toMatchObject({ inserted: 1 })
          // the COPY is refused (key a is stored) and rolled back to its savepoint: the transaction is still
          // usable, and the sink asks for the rows to write them the slow way
          return yield* sink.writeStaged(s, [second], secondRows)
        }))
        expect(firstRows.times).toBe(0)
        expect(secondRows.times).toBe(1)
        expect(result).toEqual({ inserted: 1, updated: 1, unchanged: 0, rejected: [] })
        expect(yield* TestDb.query(`SELECT id, status FROM bulk_conflict ORDER BY id`)).toEqual([
          { id: "a", status: "again" },
          { id: "b", status: "b" }
        ])
        expect(sink.stage(s, [row("c", "c", "2024-01-01T00:00:00Z")]).holdsRows).toBe(false)
      }))

    it.effect.skipIf(serverOnly)("a value Postgres refuses sends the pages back with nothing written; the bulk path stays on", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "bulk_refused", columns: [col("id", "text"), col("d", "date"), col("updated_at", "timestamptz")] })
        yield* sink.prepare(s)
        const good = valuesRow({ id: "a", d: "2024-02-28", updated_at: "2024-01-01T00:00:00Z" })
        const bad = valuesRow({ id: "b", d: "2024-02-30", updated_at: "2024-01-01T00:00:00Z" })
        const given = asked([good, bad])
        const staged = sink.stage(s, given())
        given.times = 0
        // the COPY is refused whole (nothing of it stays: `a` is inserted once, by the upsert), the sink
        // asks for the rows, and the upsert isolates the refused one
        const written = yield* locked(s, sink.writeStaged(s, [staged], given))
        expect(given.times).toBe(1)
        expect(written).toMatchObject({ inserted: 1, unchanged: 0, rejected: [{ row: bad }] })
        expect(yield* TestDb.query(`SELECT id FROM bulk_refused`)).toEqual([{ id: "a" }])
        expect(sink.stage(s, [valuesRow({ id: "c", d: "2024-03-01", updated_at: "2024-01-01T00:00:00Z" })]).holdsRows).toBe(true)
      }))

    it.effect.skipIf(serverOnly)("a row with no exact COPY text (a lone surrogate, a non-JSON value) is left to write", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "bulk_unencodable" })
        yield* sink.prepare(s)
        expect(sink.stage(s, [row("a", "lone \ud800 surrogate", "2024-01-01T00:00:00Z")]).holdsRows).toBe(false)
        expect(sink.stage(s, [row("a", "x", "2024-01-01T00:00:00Z", 10n)]).holdsRows).toBe(false)
        expect(sink.stage(s, [row("a", "x", "2024-01-01T00:00:00Z", Number.NaN)]).holdsRows).toBe(false)
        expect(sink.stage(s, [row("a", "fine", "2024-01-01T00:00:00Z")]).holdsRows).toBe(true)
      }))
  })

  describe("CopyIn.encode", () => {
    it("a page longer than one joined piece is its rows' lines in order, and one unencodable row anywhere refuses it", () => {
      // 5,000 rows: two full pieces of 2,048 rows and a partial one
      const s = spec({ table: "encode_pieces" })
      const rows = Array.from({ length: 5000 }, (_, i) =>
        row(`k${i}`, i % 7 === 0 ? "tab\there" : `s${i}`, "2024-01-01T00:00:00Z", i % 3 === 0 ? null : i / 4))
      const whole = CopyIn.encode(s.target, rows)
      expect(whole).toBe(rows.map((r) => CopyIn.encode(s.target, [r])).join(""))
      expect(whole!.split("\n")).toHaveLength(5001)
      expect(whole!.split("\n")[4999]).toBe("k4999\ts4999\t1249.75\t2024-01-01T00:00:00Z")
      for (const at of [0, 2047, 2048, 4999]) {
        const spoiled = rows.map((r, i) => i === at ? row(`k${i}`, "lone \ud800", "2024-01-01T00:00:00Z") : r)
        expect(CopyIn.encode(s.target, spoiled)).toBeUndefined()
      }
      expect(CopyIn.encode(s.target, [])).toBe("")
    })
  })

  describe("PgSink transactions", () => {
    it.effect("a failing transaction leaves nothing; rolledBackTransaction() always rolls back but returns the counts", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        const s = spec({ table: "tx" })
        yield* sink.prepare(s)
        const failed = yield* Effect.flip(locked(s, Effect.gen(function*() {
          yield* sink.write(s, [row("a", "x", "2024-01-01T00:00:00Z")])
          return yield* Effect.fail("boom" as const)
        })))
        expect(failed).toBe("boom")
        expect(yield* TestDb.query(`SELECT * FROM tx`)).toEqual([])

        const counts = yield* sink.rolledBackTransaction(sink.write(s, [row("a", "x", "2024-01-01T00:00:00Z")]))
        expect(counts).toEqual({ inserted: 1, updated: 0, unchanged: 0, rejected: [] })
        expect(yield* TestDb.query(`SELECT * FROM tx`)).toEqual([])

        yield* locked(s, sink.write(s, [row("a", "x", "2024-01-01T00:00:00Z")]))
        expect(yield* TestDb.query(`SELECT id FROM tx`)).toEqual([{ id: "a" }])
      }))
  })

  describe("PgSink.lock", () => {
    const clientSink = (applicationName: string, options?: PgSink.PgSinkOptions) =>
      Effect.map(
        Layer.build(TestDb.sqlClient({ applicationName })),
        (ctx) => PgSink.make(Context.get(ctx, SqlClient), options)
      )

    // advisory locks exclude between sessions; the embedded database has one (it locks its data directory)
    it.scoped.skipIf(serverOnly)("a second lock fails with LockHeld naming the holder, and succeeds once the first is released", () =>
      Effect.gen(function*() {
        const a = yield* clientSink("ferry-test holder-A")
        const b = yield* clientSink("ferry-test holder-B")
        const scopeA = yield* Scope.make()
        yield* a.lock(spec({ table: "orders" })).pipe(Scope.extend(scopeA))

        const held = yield* Effect.flip(Effect.scoped(b.lock(spec({ table: "orders" }))))
        expect(held).toBeInstanceOf(LockHeld)
        expect((held as LockHeld).stream).toBe("orders")
        expect(held.message).toContain("stream orders is being synced by another run into public.orders")
        expect((held as LockHeld).holder).toContain("ferry-test holder-A")
        expect(held.exitCode).toBe(75)
        // a different stream is not blocked, and neither is the same client on another connection
        yield* Effect.scoped(b.lock(spec({ table: "customers" })))
        expect(yield* Effect.flip(Effect.scoped(a.lock(spec({ table: "orders" }))))).toBeInstanceOf(LockHeld)

        yield* Scope.close(scopeA, Exit.void)
        yield* Effect.scoped(b.lock(spec({ table: "orders" })))
        // nothing leaked into the pool: no advisory lock is left
        const left = yield* TestDb.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
        expect(left).toEqual([{ n: 0 }])
      }))

    const leaseOf = (table: string) =>
      TestDb.query(`SELECT epoch::int AS epoch, expires_at > now() AS live FROM ferry.leases WHERE stream = $1`, [table])

    it.scoped.skipIf(serverOnly)("fencing: a lease taken over once expired fails the old owner's next commit with 75 naming the new epoch; its release leaves the new lease alone", () =>
      Effect.gen(function*() {
        const s = spec({ table: "fenced" })
        const a = yield* clientSink("ferry-test fence-A")
        const b = yield* clientSink("ferry-test fence-B")
        yield* a.prepare(s)
        const scopeA = yield* Scope.make()
        yield* a.lock(s, "run-a").pipe(Scope.extend(scopeA))
        expect(yield* leaseOf("fenced")).toEqual([{ epoch: 1, live: true }])
        const held = yield* Effect.flip(Effect.scoped(b.lock(s)))
        expect(held).toBeInstanceOf(LockHeld)
        expect((held as LockHeld).holder).toMatch(/^"ferry-test fence-A", host .+, pid \d+, run run-a, lease epoch 1 until \d{4}-/)

        // A stops renewing (a stall) and its lease runs out; its session, and its advisory lock, live on
        yield* TestDb.query(`UPDATE ferry.leases SET expires_at = now() - interval '1 second' WHERE stream = 'fenced'`)
        const scopeB = yield* Scope.make()
        yield* b.lock(s, "run-b").pipe(Scope.extend(scopeB))
        expect(yield* leaseOf("fenced")).toEqual([{ epoch: 2, live: true }])

        const refused = yield* Effect.flip(a.transaction(s, a.write(s, [row("a", "zombie", "2024-01-01T00:00:00Z")])))
        expect(refused).toBeInstanceOf(DatabaseError)
        expect(refused.exitCode).toBe(75)
        expect(refused.message).toContain("stream fenced (public.fenced): its lease (epoch 1) was taken over by \"ferry-test fence-B\"")
        expect(refused.message).toContain("run run-b (epoch 2); stopping rather than writing for a stream another process owns")
        expect((yield* Effect.flip(a.verifyLock(s))).exitCode).toBe(75)
        expect(yield* TestDb.query(`SELECT id FROM fenced`)).toEqual([])

        yield* b.transaction(s, b.write(s, [row("a", "owner", "2024-01-01T00:00:00Z")]))
        yield* Scope.close(scopeA, Exit.void)
        expect(yield* leaseOf("fenced")).toEqual([{ epoch: 2, live: true }])
        yield* Scope.close(scopeB, Exit.void)
        // released: expired at once, the epoch kept
        expect(yield* leaseOf("fenced")).toEqual([{ epoch: 2, live: false }])
        expect(yield* TestDb.query(`SELECT id, status FROM fenced`)).toEqual([{ id: "a", status: "owner" }])
      }))

    it.scoped.skipIf(serverOnly)("a lease renewed by its owner outlives its length; a session holding the advisory lock with no lease (an older release) is not taken over", () =>
      Effect.gen(function*() {
        const s = spec({ table: "renewed" })
        const a = yield* clientSink("ferry-test renew-A", { lease: Duration.millis(600) })
        const b = yield* clientSink("ferry-test renew-B", { lease: Duration.millis(600) })
        yield* a.prepare(s)
        const scopeA = yield* Scope.make()
        yield* a.lock(s).pipe(Scope.extend(scopeA))
        yield* Effect.sleep(Duration.millis(1500))
        expect(yield* leaseOf("renewed")).toEqual([{ epoch: 1, live: true }])
        expect(yield* Effect.flip(Effect.scoped(b.lock(s)))).toBeInstanceOf(LockHeld)
        yield* a.transaction(s, a.write(s, [row("a", "x", "2024-01-01T00:00:00Z")]))
        yield* Scope.close(scopeA, Exit.void)

        // an older release holds the advisory lock and knows no lease: no row, no takeover
        yield* TestDb.query(`DELETE FROM ferry.leases WHERE stream = 'renewed'`)
        const sql = yield* Effect.map(Layer.build(TestDb.sqlClient({ applicationName: "ferry-test old-release" })), (ctx) => Context.get(ctx, SqlClient))
        const conn = yield* sql.reserve
        yield* conn.execute(`SELECT pg_advisory_lock(hashtextextended('ferry:stream:renewed:public.renewed', 0))`, [], undefined)
        const held = yield* Effect.flip(Effect.scoped(b.lock(s)))
        expect(held).toBeInstanceOf(LockHeld)
        expect((held as LockHeld).holder).toContain("ferry-test old-release")
        expect(yield* leaseOf("renewed")).toEqual([])
      }))

    it.scoped.skipIf(serverOnly)("with advisoryLock false the lock is a no-op", () =>
      Effect.gen(function*() {
        const a = yield* clientSink("ferry-test nolock-A", { advisoryLock: false })
        const b = yield* clientSink("ferry-test nolock-B", { advisoryLock: false })
        yield* a.lock(spec({ table: "orders" }))
        yield* b.lock(spec({ table: "orders" }))
        const held = yield* TestDb.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
        expect(held).toEqual([{ n: 0 }])
      }))
  })

  describe("PgSink quarantine and runs", () => {
    it.effect("quarantined records are kept losslessly; runs record start and finish", () =>
      Effect.gen(function*() {
        const sink = yield* Sink
        yield* sink.prepare(spec({ table: "q_target" }))
        const raw = { id: 1, note: "nul \u0000 here", nested: { "é": [1, 2.5, null] } }
        yield* sink.quarantine({ ...spec({ table: "q_target" }), name: "orders" }, "run-1", [
          { raw, reason: "Expected string, got number at id" },
          { raw: "just text", reason: "not an object" }
        ])
        const q = yield* TestDb.query(`SELECT run_id, stream, reason, record, received_at IS NOT NULL AS has_time FROM ferry.quarantine ORDER BY id`)
        expect(q.map((r) => ({ ...r, record: JSON.parse(r.record) }))).toEqual([
          { run_id: "run-1", stream: "orders", reason: "Expected string, got number at id", record: raw, has_time: true },
          { run_id: "run-1", stream: "orders", reason: "not an object", record: "just text", has_time: true }
        ])

        yield* sink.startRun({ ...spec({ table: "q_target" }), name: "orders" }, "run-1")
        const started = yield* TestDb.query(`SELECT status, started_at IS NOT NULL AS s, finished_at FROM ferry.runs WHERE run_id = 'run-1'`)
        expect(started).toEqual([{ status: "running", s: true, finished_at: null }])
        yield* sink.finishRun({
          runId: "run-1",
          stream: "orders",
          target: "public.q_target",
          status: "failed",
          counts: { pages: 3, fetched: 10, inserted: 4, updated: 3, unchanged: 1, quarantined: 2, alreadyQuarantined: 0, retries: 5 },
          checkpoint: "2024-01-01T00:00:00Z",
          error: "stream orders: boom",
          exitCode: 65
        })
        const finished = yield* TestDb.query(`SELECT status, pages::int, fetched::int, inserted::int, updated::int, unchanged::int,
                    quarantined::int, retries::int, checkpoint, error, exit_code, finished_at >= started_at AS ordered
                    FROM ferry.runs WHERE run_id = 'run-1'`)
        expect(finished).toEqual([{
          status: "failed",
          pages: 3,
          fetched: 10,
          inserted: 4,
          updated: 3,
          unchanged: 1,
          quarantined: 2,
          retries: 5,
          checkpoint: "2024-01-01T00:00:00Z",
          error: "stream orders: boom",
          exit_code: 65,
          ordered: true
        }])
      }))
  })

  describe("Database", () => {
    it("describe names host:port/database only", () => {
      expect(Database.describe(Redacted.make("postgres://ferry:s3cret-pw@db.example.com:6543/app?sslmode=require")))
        .toBe("db.example.com:6543/app")
      expect(Database.describe(Redacted.make("postgres://u@localhost/app"))).toBe("localhost:5432/app")
      expect(Database.describe(Redacted.make("not a url with s3cret-pw"))).not.toContain("s3cret")
    })

    it.effect("a closed port fails fast with a DatabaseError naming the host, never the password", () =>
      Effect.gen(function*() {
        const url = "postgres://ferry:s3cret-pw@127.0.0.1:1/app"
        const error = yield* Effect.flip(Layer.build(Database.layer({ url: Redacted.make(url) })).pipe(Effect.scoped))
        expect(error).toBeInstanceOf(DatabaseError)
        expect(error.exitCode).toBe(74)
        expect(error.message).toContain("127.0.0.1:1/app")
        expect(error.message).toContain("ECONNREFUSED")
        expect(error.message).not.toContain("s3cret-pw")
        expect(error.message).not.toContain(url)
      }))

    it.effect("a server that accepts and never answers fails at the connect timeout", () =>
      Effect.gen(function*() {
        const sockets: Array<net.Socket> = []
        const server = net.createServer((socket) => void sockets.push(socket))
        const port = yield* Effect.async<number>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
        })
        const url = `postgres://ferry:s3cret-pw@127.0.0.1:${port}/app`
        const error = yield* Effect.flip(
          Layer.build(Database.layer({ url: Redacted.make(url), connectTimeout: Duration.millis(300) })).pipe(
            Effect.scoped
          )
        ).pipe(
          Effect.ensuring(Effect.sync(() => {
            sockets.forEach((s) => s.destroy())
            server.close()
          }))
        )
        expect(error).toBeInstanceOf(DatabaseError)
        expect(error.message).toContain(`127.0.0.1:${port}/app`)
        expect(error.message).toMatch(/time/i)
        expect(error.message).not.toContain("s3cret-pw")
      }))

    // PGlite serves one database whatever the URL names, and has no pg_stat_activity of its own
    it.effect.skipIf(serverOnly)("a missing database is named with Postgres' reason", () =>
      Effect.gen(function*() {
        const u = new URL((yield* TestDb).url)
        u.pathname = "/ferry_no_such_database"
        u.password = "s3cret-pw"
        const error = yield* Effect.flip(Layer.build(Database.layer({ url: Redacted.make(u.toString()) })).pipe(Effect.scoped))
        expect(error.message).toContain("/ferry_no_such_database")
        expect(error.message).toContain("3D000")
        expect(error.message).not.toContain("s3cret-pw")
      }))

    it.effect.skipIf(serverOnly)("the default application_name says ferry, host and pid", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient
        const rows = yield* sql.unsafe<{ name: string }>(`SELECT current_setting('application_name') AS name`)
        expect(rows[0].name).toBe(Database.defaultApplicationName().slice(0, 63))
        expect(rows[0].name).toContain(`pid ${process.pid}`)
      }))
  })
})
