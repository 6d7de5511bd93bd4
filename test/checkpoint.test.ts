/**
 * CheckpointStore layers. postgres: ferry.state on a real PostgreSQL (a fresh database for this
 * file), joining the sink's transaction. file: one JSON file replaced atomically under a lock file.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type CheckpointKey, CheckpointStore, layerFile, layerPostgres } from "../src/Checkpoint.js"
import * as Database from "../src/Database.js"
import { DatabaseError } from "../src/Errors.js"
import * as PgSink from "../src/PgSink.js"
import { Sink } from "../src/Sink.js"
import type { StreamSpec } from "../src/StreamSpec.js"
import { createTestDatabase, type TestDatabase } from "./support/pg.js"

let db: TestDatabase
const root = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-checkpoint-"))
beforeAll(async () => {
  db = await createTestDatabase("ferry_checkpoint")
})
afterAll(async () => {
  fs.rmSync(root, { recursive: true, force: true })
  await db?.drop()
})

const pgLayer = () =>
  Layer.mergeAll(layerPostgres, PgSink.layer()).pipe(
    Layer.provideMerge(Layer.suspend(() => Database.layer({ url: Redacted.make(db.url) })))
  )

const onPostgres = <A, E>(effect: Effect.Effect<A, E, CheckpointStore | Sink | SqlClient>) =>
  Effect.provide(effect, pgLayer())

/** the checkpoint of stream `stream` into table public.orders */
const key = (stream: string, cursorType: CheckpointKey["cursorType"] = "string"): CheckpointKey => ({
  stream,
  target: "public.orders",
  cursorType
})

const spec: StreamSpec = {
  name: "orders",
  source: {
    url: "http://127.0.0.1:9/unused",
    headers: {},
    params: {},
    pagination: { type: "none" },
    timeout: Duration.seconds(1),
    retry: { attempts: 1, base: Duration.millis(1), max: Duration.millis(1) }
  },
  target: {
    schema: "public",
    table: "orders",
    primaryKey: ["id"],
    columns: [{ name: "id", type: "text", from: "id" }]
  },
  decode: () => Either.left("unused"),
  maxInvalid: 0
}

describe("CheckpointStore postgres", () => {
  // first in the file: the database has no schema `ferry` yet
  it.live("before any prepare: load is None and clear is a no-op, even inside a transaction", () =>
    onPostgres(Effect.gen(function*() {
      const store = yield* CheckpointStore
      const sink = yield* Sink
      expect(store.kind).toBe("postgres")
      expect(store.transactional).toBe(true)
      const loaded = yield* sink.transaction(Effect.gen(function*() {
        const a = yield* store.load(key("orders"))
        yield* store.clear(key("orders"))
        // the transaction is still usable
        const sql = yield* SqlClient
        yield* sql.unsafe(`SELECT 1`)
        return a
      }))
      expect(loaded).toEqual(Option.none())
      expect(yield* Effect.promise(() => db.query(`SELECT to_regclass('ferry.state') AS t`))).toEqual([{ t: null }])
    })))

  it.live("save, load, overwrite and clear", () =>
    onPostgres(Effect.gen(function*() {
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
      expect(yield* Effect.promise(() => db.query(`SELECT stream, cursor FROM ferry.state`))).toEqual([
        { stream: "customers", cursor: "42" }
      ])
    })))

  it.live("a checkpoint saved inside a transaction that fails is not saved, nor are its rows", () =>
    onPostgres(Effect.gen(function*() {
      const store = yield* CheckpointStore
      const sink = yield* Sink
      yield* sink.prepare(spec)
      const row = { key: "[\"a\"]", cursor: undefined, values: { id: "a" } }
      const failed = yield* Effect.flip(sink.transaction(Effect.gen(function*() {
        yield* sink.write(spec, [row])
        yield* store.save(key("tx-stream"), "must-not-stay")
        return yield* Effect.fail("boom" as const)
      })))
      expect(failed).toBe("boom")
      expect(yield* store.load(key("tx-stream"))).toEqual(Option.none())
      expect(yield* Effect.promise(() => db.query(`SELECT id FROM orders`))).toEqual([])

      yield* sink.transaction(Effect.zipRight(sink.write(spec, [row]), store.save(key("tx-stream"), "kept")))
      expect(yield* store.load(key("tx-stream"))).toEqual(Option.some({ cursor: "kept", legacy: false }))
      expect(yield* Effect.promise(() => db.query(`SELECT id FROM orders`))).toEqual([{ id: "a" }])
    })))
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
