/**
 * Batches of a stream, with prefetch: consecutive elements go into one batch until it holds enough
 * records or bytes, or has waited long enough; the next batch is pulled while the last one is handled.
 * General: it knows only that an element has a size.
 */
import { Chunk, Clock, Effect, Either, Fiber, Option, Stream } from "effect"
import type { Scope } from "effect"

/**
 * Pages are written in batches: consecutive pages go into one transaction until the batch holds this
 * many records or body bytes, or has waited this long for its pages. Small pages then cost one
 * transaction per few thousand records, not one each (the round trips and commit of a transaction
 * cost about as much as writing a thousand rows); a slow source still commits at least every second.
 * 10,000 records rather than 5,000: each of a transaction's six round trips waits behind the fiber
 * decoding the next batch (~3 ms on 2 cores), and halving their number took a 500,000-record first
 * load from 2.35 to 2.0 s and a full refresh from 3.85 to 3.3 s (docs/PERFORMANCE.md).
 */
export interface BatchLimits {
  readonly records: number
  readonly bytes: number
  readonly millis: number
}
export const batchLimits: BatchLimits = { records: 10000, bytes: 4 * 1024 * 1024, millis: 1000 }

/**
 * While a batch is written, the next one is fetched and decoded, but only when the batch being
 * written had bodies under this many bytes: at most two small batches, or one large page, are in
 * memory at once (a source that answers 50 MB pages must not have three of them in flight).
 */
export const prefetchBelowBytes = 8 * 1024 * 1024

/** what a batch's limits count of an element */
export interface Measured {
  readonly records: number
  readonly bytes: number
}

/**
 * The stream's elements one by one: `Right(Some)` the next, `Right(None)` the end, `Left` a failure
 * (of the stream, or an element that is one: a Left rather than Stream.mapEffect, which costs an
 * effect per element: see Sync.ts). A pull may return several elements at once: they are handed out
 * in turn. The outcome is a value, not a failure to catch: a catch and an `Effect.either` per page
 * were a good part of the Effect steps a page took (issue 17).
 */
const pullingOne = <A, E, R>(
  pullChunk: Effect.Effect<Chunk.Chunk<Either.Either<A, E>>, Option.Option<E>, R>
): Effect.Effect<Either.Either<Option.Option<A>, E>, never, R> => {
  let pending: Array<Either.Either<A, E>> = []
  const handOut = (): Either.Either<Option.Option<A>, E> => {
    const next = pending.pop()!
    return Either.isLeft(next) ? Either.left(next.left) : Either.right(Option.some(next.right))
  }
  const ended = (e: Option.Option<E>): Either.Either<Option.Option<A>, E> =>
    Option.isNone(e) ? Either.right(Option.none()) : Either.left(e.value)
  const pull: Effect.Effect<Either.Either<Option.Option<A>, E>, never, R> = Effect.suspend(() =>
    pending.length > 0 ? Effect.succeed(handOut()) : Effect.matchEffect(pullChunk, {
      onFailure: (e) => Effect.succeed(ended(e)),
      onSuccess: (chunk) => {
        pending = Chunk.toArray(chunk).reverse()
        return pull
      }
    })
  )
  return pull
}

/**
 * Runs `f` on consecutive batches of the stream's elements, in order (see `batchLimits`). While `f`
 * runs on one batch, the next is pulled in its own fiber if the current one is under `prefetchBytes`.
 * A failure of the source after some elements of a batch were pulled ends that batch: `f` gets it,
 * and the failure surfaces at the next pull, so what was fetched is written first. `last`: the stream
 * ended, without a failure, within this batch (known when the batch was pulled; a stream whose end
 * only the next pull finds has no batch marked last).
 */
export const forEachBatch = <A extends Measured, E, R, E2, R2>(
  stream: Stream.Stream<Either.Either<A, E>, E, R>,
  limits: BatchLimits,
  prefetchBytes: number,
  f: (batch: ReadonlyArray<A>, last: boolean) => Effect.Effect<void, E2, R2>
): Effect.Effect<void, E | E2, R | R2 | Scope.Scope> =>
  Effect.gen(function*() {
    const pullOne = pullingOne(yield* Stream.toPull(stream))
    let ended = false
    let failure: Option.Option<E> = Option.none()
    const pullBatch: Effect.Effect<{ readonly batch: Array<A>; readonly last: boolean }, E, R> = Effect.gen(function*() {
      if (Option.isSome(failure)) return yield* Effect.fail(failure.value)
      const batch: Array<A> = []
      let records = 0
      let bytes = 0
      const startedAt = yield* Clock.currentTimeMillis
      while (!ended) {
        const next = yield* pullOne
        if (Either.isLeft(next)) {
          if (batch.length === 0) return yield* Effect.fail(next.left)
          failure = Option.some(next.left)
          break
        }
        if (Option.isNone(next.right)) {
          ended = true
          break
        }
        batch.push(next.right.value)
        records += next.right.value.records
        bytes += next.right.value.bytes
        if (records >= limits.records || bytes >= limits.bytes) break
        if ((yield* Clock.currentTimeMillis) - startedAt >= limits.millis) break
      }
      return { batch, last: ended && Option.isNone(failure) }
    })
    let current = yield* pullBatch
    while (current.batch.length > 0) {
      const size = current.batch.reduce((n, a) => n + a.bytes, 0)
      const ahead = size < prefetchBytes ? yield* Effect.fork(pullBatch) : undefined
      yield* f(current.batch, current.last)
      current = ahead === undefined ? yield* pullBatch : yield* Fiber.join(ahead)
    }
  })
