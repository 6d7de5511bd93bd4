/**
 * How Sync groups pages into transactions and how far it reads ahead (in-memory layers): small pages
 * share a transaction, a source failure still writes what was fetched before it, and a large page is
 * never fetched ahead (memory stays at one large page, whatever the number of pages).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Stream } from "effect"
import { type DatabaseError, SourceError } from "../src/domain/Errors.js"
import * as Memory from "../src/testing/index.js"
import { Sink } from "../src/Sink.js"
import type * as Source from "../src/Source.js"
import type { Row, StreamSpec } from "../src/domain/StreamSpec.js"
import { batchLimits, prefetchBelowBytes } from "../src/sync/Batches.js"
import { syncStream } from "../src/sync/Sync.js"
import * as streams from "./support/streams.js"

const spec: StreamSpec = streams.streamSpec({
  source: {
    url: "http://model.invalid/items",
    incremental: streams.incremental({ cursorField: "updated", param: "since", order: "asc" })
  },
  target: streams.target({
    columns: [streams.column("id", "text"), streams.column("updated", "numeric")],
    cursorColumn: "updated"
  })
})

/** `count` pages of `size` records each, claiming `bytes` of body each; `pulled` counts pages handed out */
const pagedSource = (options: { count: number; size: number; bytes: number; failAfter?: number }) => {
  const state = { pulled: 0 }
  const layer = Memory.MemorySource.layer(() =>
    Stream.unfoldEffect(0, (k) =>
      Effect.suspend(() => {
        if (options.failAfter !== undefined && k === options.failAfter) {
          return Effect.fail(new SourceError({ stream: "items", url: "model://items", status: 503, reason: "injected" }))
        }
        if (k >= options.count) return Effect.succeed(Option.none())
        state.pulled++
        const records = Array.from({ length: options.size }, (_, i) => ({ id: `r${k * options.size + i}`, updated: k }))
        return Effect.succeed(Option.some([{ records, url: `model://items?page=${k}`, retries: 0, bytes: options.bytes }, k + 1] as const))
      })))
  return { state, layer }
}

/** the in-memory sink, whose writes take 10 ms and note how many pages had been pulled when each began */
const slowSink = (pulledAtWrite: Array<number>, state: { pulled: number }) =>
  Layer.effect(
    Sink,
    Effect.map(Sink, (sink) => {
      // a batch's write takes 10 ms and notes how many pages were pulled by then
      const slow = <A>(write: () => Effect.Effect<A, DatabaseError>) =>
        Effect.zipRight(
          Effect.sleep("10 millis"),
          Effect.suspend(() => {
            pulledAtWrite.push(state.pulled)
            return write()
          })
        )
      return {
        ...sink,
        writeStaged: (stream: StreamSpec, pages: Parameters<typeof sink.writeStaged>[1], rows: () => ReadonlyArray<Row>) =>
          slow(() => sink.writeStaged(stream, pages, rows))
      }
    })
  )

describe("Sync batching and read-ahead", () => {
  it.effect("consecutive small pages share a transaction; { records: 1 } writes one per page", () =>
    Effect.gen(function*() {
      const perBatch = batchLimits.records / 1000
      const db = Memory.make()
      const { layer } = pagedSource({ count: 2 * perBatch + 2, size: 1000, bytes: 1000 })
      const summary = yield* syncStream(spec, { runId: "r1" }).pipe(Effect.provide(Layer.merge(Memory.layer(db), layer)))
      expect(summary).toMatchObject({ pages: 2 * perBatch + 2, fetched: (2 * perBatch + 2) * 1000, inserted: (2 * perBatch + 2) * 1000 })
      expect(db.writes).toBe(3)
      expect(db.state.checkpoints.get("items@public.items")).toBe(String(2 * perBatch + 1))

      const perPage = Memory.make()
      const again = pagedSource({ count: 4, size: 10, bytes: 100 })
      yield* syncStream(spec, { runId: "r2", batch: { records: 1 } }).pipe(
        Effect.provide(Layer.merge(Memory.layer(perPage), again.layer))
      )
      expect(perPage.writes).toBe(4)
    }))

  it.effect("a source failure after some pages: those pages are written and the checkpoint covers them", () =>
    Effect.gen(function*() {
      const db = Memory.make()
      const { layer } = pagedSource({ count: 10, size: 10, bytes: 100, failAfter: 3 })
      const result = yield* Effect.either(syncStream(spec, { runId: "r1" }).pipe(Effect.provide(Layer.merge(Memory.layer(db), layer))))
      expect(Either.isLeft(result) && result.left._tag).toBe("SourceError")
      expect(db.state.tables.get("public.items")?.size).toBe(30)
      expect(db.state.checkpoints.get("items@public.items")).toBe("2")
    }))

  it.live("small batches are fetched one ahead of the write; large pages are not fetched ahead", () =>
    Effect.gen(function*() {
      const run = (bytes: number) =>
        Effect.gen(function*() {
          const pulledAtWrite: Array<number> = []
          const { layer, state } = pagedSource({ count: 5, size: 10, bytes })
          const sinks = slowSink(pulledAtWrite, state).pipe(Layer.provideMerge(Memory.layer(Memory.make())))
          yield* syncStream(spec, { runId: "r1", batch: { records: 1 } }).pipe(Effect.provide(Layer.merge(sinks, layer)))
          return pulledAtWrite
        })
      // small: while batch k is written, batch k + 1 is already fetched (never more)
      expect(yield* run(100)).toEqual([2, 3, 4, 5, 5])
      // large: nothing is fetched while a large page is written
      expect(yield* run(prefetchBelowBytes)).toEqual([1, 2, 3, 4, 5])
    }))

  it.effect("a first load's batch goes in bulk even with a page that has no rows (empty, or only invalid records)", () =>
    Effect.gen(function*() {
      const db = Memory.make()
      const pages: Array<Source.Page> = [
        { records: [{ id: "a", updated: 1 }, { id: "b", updated: 1 }], url: "model://1", retries: 0, bytes: 10 },
        { records: [], url: "model://2", retries: 0, bytes: 10 },
        { records: [{ updated: "not a row" }], url: "model://3", retries: 0, bytes: 10 },
        { records: [{ id: "c", updated: 2 }], url: "model://4", retries: 0, bytes: 10 }
      ]
      const summary = yield* syncStream({ ...spec, maxInvalid: 1 }, { runId: "r1" }).pipe(
        Effect.provide(Layer.merge(Memory.layer(db), Memory.MemorySource.layer(() => Stream.fromIterable(pages))))
      )
      expect(summary).toMatchObject({ pages: 4, fetched: 4, inserted: 3, quarantined: 1 })
      expect(db.bulk).toEqual({ written: 1, refused: 0 })
      expect(db.writes).toBe(1)
    }))
})
