/**
 * CheckpointStore layers. postgres: ferry.state on a real PostgreSQL (a fresh database for this
 * file), joining the sink's transaction. file: one JSON file replaced atomically under a lock file.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Layer, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type CheckpointKey, CheckpointStore } from "../src/CheckpointStore.js"
import { layer as layerFile } from "../src/checkpoint/FileCheckpoints.js"
import { layer as layerPostgres } from "../src/checkpoint/PostgresCheckpoints.js"
import { DatabaseError } from "../src/domain/Errors.js"
import * as Memory from "../src/testing/index.js"
import * as PgSink from "../src/sink/postgres/PgSink.js"
import { Sink } from "../src/Sink.js"
import { syncStream } from "../src/sync/Sync.js"
import { TestDb } from "./support/pg.js"
import { column, incremental, streamSpec } from "./support/streams.js"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-checkpoint-"))
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true })
})

/** the store and the sink over one pool, on a fresh database for this file */
const onPostgres = Layer.mergeAll(layerPostgres, PgSink.layer()).pipe(
  Layer.provideMerge(TestDb.sqlClient()),
  Layer.provideMerge(TestDb.layer("ferry_checkpoint"))
)

/** the checkpoint of stream `stream` into table public.orders */
const key = (stream: string, cursorType: CheckpointKey["cursorType"] = "string"): CheckpointKey => ({
  stream,
  target: "public.orders",
  cursorType
})

const spec = streamSpec({
  name: "orders",
  target: { table: "orders", columns: [column("id", "text")] },
  decode: () => Either.left("unused")
})

layer(onPostgres, { excludeTestServices: true })("CheckpointStore postgres", (it) => {
  // first in the file: the database has no schema `ferry` yet
  it.effect("before any prepare: load is None and clear is a no-op, even inside a transaction", () =>
    Effect.gen(function*() {
      const store = yield* CheckpointStore
      expect(store.kind).toBe("postgres")
      expect(store.transactional).toBe(true)
      const sql = yield* SqlClient
      const loaded = yield* sql.withTransaction(Effect.gen(function*() {
        const a = yield* store.load(key("orders"))
        yield* store.clear(key("orders"))
        // the transaction is still usable
        yield* sql.unsafe(`SELECT 1`)
        return a
      }))
      expect(loaded).toEqual(Option.none())
      expect(yield* TestDb.query(`SELECT to_regclass('ferry.state') AS t`)).toEqual([{ t: null }])
    }))

  it.effect("save, load, overwrite and clear", () =>
    Effect.gen(function*() {
      const store = yield* CheckpointStore
      yield* (yield* Sink).prepare(spec)
      yield* store.save(key("orders"), "2024-01-01T00:00:00Z")
      yield* store.save(key("customers"), "42")
      expect(yield* store.load(key("orders"))).toEqual(Option.some({ cursor: "2024-01-01T00:00:00Z", legacy: false }))
      yield* store.save(key("orders"), "2024-02-01T00:00:00Z")
      expect(yield* store.load(key("orders"))).toEqual(Option.some({ cursor: "2024-02-01T00:00:00Z", legacy: false }))
      yield* store.clear(key("orders"))
      expect(yield* store.load(key("orders"))).toEqual(Option.none())
      expect(yield* store.load(key("customers"))).toEqual(Option.some({ cursor: "42", legacy: false }))
      expect(yield* TestDb.query(`SELECT stream, cursor FROM ferry.state`)).toEqual([
        { stream: "customers", cursor: "42" }
      ])
    }))

  it.scoped("a checkpoint saved inside a transaction that fails is not saved, nor are its rows", () =>
    Effect.gen(function*() {
      const store = yield* CheckpointStore
      const sink = yield* Sink
      yield* sink.prepare(spec)
      yield* sink.lock(spec)
      const row = { key: "[\"a\"]", cursor: undefined, values: { id: "a" } }
      const failed = yield* Effect.flip(sink.transaction(spec, Effect.gen(function*() {
        yield* sink.write(spec, [row])
        yield* store.save(key("tx-stream"), "must-not-stay")
        return yield* Effect.fail("boom" as const)
      })))
      expect(failed).toBe("boom")
      expect(yield* store.load(key("tx-stream"))).toEqual(Option.none())
      expect(yield* TestDb.query(`SELECT id FROM orders`)).toEqual([])

      yield* sink.transaction(spec, Effect.zipRight(sink.write(spec, [row]), store.save(key("tx-stream"), "kept")))
      expect(yield* store.load(key("tx-stream"))).toEqual(Option.some({ cursor: "kept", legacy: false }))
      expect(yield* TestDb.query(`SELECT id FROM orders`)).toEqual([{ id: "a" }])
    }))

  describe("legacy rows", () => {
    it.effect("a row from before checkpoints had targets is adopted by one target only; clear forgets it too", () =>
      Effect.gen(function*() {
        const store = yield* CheckpointStore
        yield* (yield* Sink).prepare(spec)
        yield* TestDb.query(`INSERT INTO ferry.state (stream, target, cursor) VALUES ('legacy', '', '5')`)
        const a = { ...key("legacy"), target: "public.a" }
        const b = { ...key("legacy"), target: "public.b" }
        expect(yield* store.load(b)).toEqual(Option.some({ cursor: "5", legacy: true }))
        expect(yield* store.load(a, { adopt: true })).toEqual(Option.some({ cursor: "5", legacy: true }))
        expect(yield* store.load(a)).toEqual(Option.some({ cursor: "5", legacy: false }))
        expect(yield* store.load(b, { adopt: true })).toEqual(Option.none())
        yield* TestDb.query(`INSERT INTO ferry.state (stream, target, cursor) VALUES ('legacy', '', '6')`)
        yield* store.clear(a)
        expect(yield* store.load(a)).toEqual(Option.none())
        expect(yield* TestDb.query(`SELECT count(*)::int AS n FROM ferry.state WHERE stream = 'legacy'`)).toEqual([{ n: 0 }])
      }))
  })
})

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"))

describe("CheckpointStore file", () => {
  it.live("missing file: None; save creates the directory; round trip; clear", () =>
    Effect.gen(function*() {
      const file = path.join(root, "round", "nested", "checkpoints.json")
      const store = yield* CheckpointStore
      expect(store.kind).toBe("file")
      expect(store.transactional).toBe(false)
      expect(yield* store.load(key("orders"))).toEqual(Option.none())
      yield* store.clear(key("orders"))
      expect(fs.existsSync(file)).toBe(false)

      yield* store.save(key("orders"), "2024-01-01T00:00:00Z")
      yield* store.save(key("customers"), "17")
      expect(yield* store.load(key("orders"))).toEqual(Option.some({ cursor: "2024-01-01T00:00:00Z", legacy: false }))
      const content = readJson(file)
      expect(content.version).toBe(2)
      expect(Object.keys(content.streams).sort()).toEqual(["customers", "orders"])
      const orders = content.streams.orders["public.orders"]
      expect(orders.cursor).toBe("2024-01-01T00:00:00Z")
      expect(new Date(orders.updatedAt).toISOString()).toBe(orders.updatedAt)

      yield* store.clear(key("orders"))
      expect(yield* store.load(key("orders"))).toEqual(Option.none())
      expect(yield* store.load(key("customers"))).toEqual(Option.some({ cursor: "17", legacy: false }))
      // a fresh layer reads what the first one wrote
      const again = yield* Effect.provide(CheckpointStore, layerFile(file))
      expect(yield* again.load(key("customers"))).toEqual(Option.some({ cursor: "17", legacy: false }))
    }).pipe(Effect.provide(layerFile(path.join(root, "round", "nested", "checkpoints.json")))))

  it.live("each save replaces the file by rename and leaves no temp or lock file behind", () =>
    Effect.gen(function*() {
      const dir = path.join(root, "atomic")
      const file = path.join(dir, "state.json")
      const store = yield* Effect.provide(CheckpointStore, layerFile(file))
      yield* store.save(key("orders"), "1")
      const before = fs.statSync(file).ino
      yield* store.save(key("orders"), "2")
      expect(fs.statSync(file).ino).not.toBe(before)
      expect(readJson(file).streams.orders["public.orders"].cursor).toBe("2")
      expect(fs.readdirSync(dir)).toEqual(["state.json"])
    }))

  it.live("a corrupt or foreign file is a DatabaseError naming the file, and save does not overwrite it", () =>
    Effect.gen(function*() {
      const file = path.join(root, "corrupt", "checkpoints.json")
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(file, "{ not json")
      const store = yield* Effect.provide(CheckpointStore, layerFile(file))
      const loadError = yield* Effect.flip(store.load(key("orders")))
      expect(loadError).toBeInstanceOf(DatabaseError)
      expect(loadError.exitCode).toBe(74)
      expect(loadError.message).toContain(file)
      const saveError = yield* Effect.flip(store.save(key("orders"), "1"))
      expect(saveError.message).toContain(file)
      expect(fs.readFileSync(file, "utf8")).toBe("{ not json")

      fs.writeFileSync(file, JSON.stringify({ version: 3, streams: {} }))
      expect((yield* Effect.flip(store.load(key("orders")))).message).toContain("version")
      fs.writeFileSync(file, JSON.stringify({ version: 1, streams: { orders: { cursor: 5 } } }))
      expect((yield* Effect.flip(store.load(key("orders")))).message).toContain("orders")
    }))

  it.live("two stores (as two processes) saving different streams at once keep every update", () =>
    Effect.gen(function*() {
      const file = path.join(root, "concurrent", "checkpoints.json")
      const a = yield* Effect.provide(CheckpointStore, layerFile(file))
      const b = yield* Effect.provide(CheckpointStore, layerFile(file))
      const saves = Array.from({ length: 20 }, (_, i) => [a.save(key(`a${i}`), `${i}`), b.save(key(`b${i}`), `${i}`)]).flat()
      yield* Effect.all(saves, { concurrency: "unbounded", discard: true })
      const streams = readJson(file).streams
      expect(Object.keys(streams).length).toBe(40)
      for (let i = 0; i < 20; i++) {
        expect(streams[`a${i}`]["public.orders"].cursor).toBe(`${i}`)
        expect(streams[`b${i}`]["public.orders"].cursor).toBe(`${i}`)
      }
      expect(fs.existsSync(`${file}.lock`)).toBe(false)
    }))

  it.live("a lock file left by a dead process is taken over", () =>
    Effect.gen(function*() {
      const file = path.join(root, "stale", "checkpoints.json")
      fs.mkdirSync(path.dirname(file), { recursive: true })
      // above any pid_max, so no such process
      fs.writeFileSync(`${file}.lock`, "99999999")
      const store = yield* Effect.provide(CheckpointStore, layerFile(file))
      yield* store.save(key("orders"), "1")
      expect(yield* store.load(key("orders"))).toEqual(Option.some({ cursor: "1", legacy: false }))
      expect(fs.existsSync(`${file}.lock`)).toBe(false)
    }))
})

// Issue 10, item 10: the file store can no longer move a checkpoint back.
describe("CheckpointStore file: never backwards, never without the lock", () => {
  it.live("a stale save does not move it back: two stores (two runs) saving interleaved keep the greatest, by cursor type", () =>
    Effect.gen(function*() {
      const file = path.join(root, "stale-save", "checkpoints.json")
      const a = yield* Effect.provide(CheckpointStore, layerFile(file))
      const b = yield* Effect.provide(CheckpointStore, layerFile(file))
      yield* a.save(key("orders", "timestamp"), "2024-01-01T00:00:00Z")
      yield* b.save(key("orders", "timestamp"), "2024-03-01T00:00:00Z")
      // the stalled run saves last, with its older cursor (another offset, the same instant as before)
      yield* a.save(key("orders", "timestamp"), "2024-02-01T00:00:00+01:00")
      expect(yield* a.load(key("orders"))).toEqual(Option.some({ cursor: "2024-03-01T00:00:00Z", legacy: false }))
      // numbers compare as numbers ("9" < "10"), not as text
      yield* b.save(key("ids", "number"), "10")
      yield* a.save(key("ids", "number"), "9")
      expect(readJson(file).streams.ids["public.orders"].cursor).toBe("10")
      yield* a.save(key("ids", "number"), "11")
      expect(readJson(file).streams.ids["public.orders"].cursor).toBe("11")
    }))

  it.live("a save whose guard fails (the run lost its lock) is refused with 74 and writes nothing", () =>
    Effect.gen(function*() {
      const file = path.join(root, "guarded", "checkpoints.json")
      const store = yield* Effect.provide(CheckpointStore, layerFile(file))
      yield* store.save(key("orders"), "1", Effect.void)
      const lost = new DatabaseError({ reason: "lost the lock of stream orders" })
      const error = yield* Effect.flip(store.save(key("orders"), "2", Effect.fail(lost)))
      expect(error.exitCode).toBe(74)
      expect(error.message).toContain("lost the lock")
      expect(readJson(file).streams.orders["public.orders"].cursor).toBe("1")
    }))

  it.live("a stalled run that lost its lease while another run finished exits 75 and leaves the later checkpoint", () =>
    Effect.gen(function*() {
      const file = path.join(root, "stalled-run", "checkpoints.json")
      const db = Memory.make()
      const items = streamSpec({
        source: { incremental: incremental({ cursorField: "updated", param: "since" }) },
        target: { columns: [column("id", "text"), column("updated", "numeric")], cursorColumn: "updated" }
      })
      const page = (ids: ReadonlyArray<number>) => ({
        records: ids.map((i) => ({ id: `r${i}`, updated: i })),
        url: "model://items",
        retries: 0,
        bytes: 0
      })
      const stalled = yield* Deferred.make<void>()
      const resume = yield* Deferred.make<void>()
      let requests = 0
      const source = Memory.MemorySource.layer(() =>
        ++requests === 1
          // run A: one page, then it stalls before the stream ends (and before its checkpoint is saved)
          ? Stream.concat(
            Stream.make(page([1, 2, 3, 4, 5])),
            Stream.drain(Stream.fromEffect(Effect.zipRight(Deferred.succeed(stalled, undefined), Deferred.await(resume))))
          )
          : Stream.make(page([1, 2, 3, 4, 5, 6, 7, 8, 9]))
      )
      // two processes: each its own file store and sink over the one database
      const process = () =>
        Layer.mergeAll(Memory.MemorySink.layer, layerFile(file), source).pipe(Layer.provideMerge(Layer.succeed(Memory.MemoryDatabase, db)))
      const runA = yield* Effect.fork(Effect.either(syncStream(items, { runId: "a", batch: { records: 1 } }).pipe(Effect.provide(process()))))
      yield* Deferred.await(stalled)
      // A's lease is taken over (as after a stall past it): run B takes the stream and finishes
      db.locks.clear()
      const b = yield* syncStream(items, { runId: "b" }).pipe(Effect.provide(process()))
      expect(b.checkpoint).toBe("9")
      yield* Deferred.succeed(resume, undefined)
      const a = yield* Fiber.join(runA)
      // the lease is gone: its next commit, or its file save, is refused (75: the stream is another's)
      expect(Either.isLeft(a) && a.left.exitCode).toBe(75)
      expect(readJson(file).streams.items["public.items"].cursor).toBe("9")
    }))

  it.live("a version 1 file keeps working: its checkpoint is adopted by a target and written as version 2", () =>
    Effect.gen(function*() {
      const file = path.join(root, "v1", "checkpoints.json")
      fs.mkdirSync(path.dirname(file), { recursive: true })
      // a stream named __proto__ is a stream like any other
      fs.writeFileSync(file, `{"version":1,"streams":{"orders":{"cursor":"7","updatedAt":""},"__proto__":{"cursor":"1"}}}`)
      const store = yield* Effect.provide(CheckpointStore, layerFile(file))
      // read-only: legacy, not moved
      expect(yield* store.load(key("orders"))).toEqual(Option.some({ cursor: "7", legacy: true }))
      expect(readJson(file).version).toBe(1)
      // adopted by one target: the other target of a stream of that name no longer sees it
      expect(yield* store.load(key("orders"), { adopt: true })).toEqual(Option.some({ cursor: "7", legacy: true }))
      expect(yield* store.load(key("orders"))).toEqual(Option.some({ cursor: "7", legacy: false }))
      expect(yield* store.load({ ...key("orders"), target: "sales.orders" })).toEqual(Option.none())
      const content = readJson(file)
      expect(content.version).toBe(2)
      expect(content.streams.orders["public.orders"].cursor).toBe("7")
      expect(Object.keys(content.legacy)).toEqual(["__proto__"])
    }))
})
