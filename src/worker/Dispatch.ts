/**
 * The worker's loop: while it has a free slot (`concurrency`), it claims the next job from its
 * streams' queues (round robin, so that a busy stream does not starve the others), runs the stream
 * with `ferry run`'s program (`syncStreamExit`), proves the job alive to pg-boss while it runs, and
 * settles the job by the run's exit code (Outcome.ts). `stop`: no more claims, every running stream
 * interrupted (each finishes its current transaction and records its run: Sync.ts), their jobs handed
 * back to their queues, then it returns.
 */
import { Cause, Duration, Effect, Exit, Fiber } from "effect"
import { ExitCode } from "../domain/Errors.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import { syncStreamExit } from "../sync/Sync.js"
import type { Boss } from "./Boss.js"
import type { Counters } from "./Counters.js"
import { type Outcome, outcomeOf } from "./Outcome.js"
import { heartbeatSeconds, pollIntervalMillis, queueName } from "./Queues.js"

export interface DispatchOptions {
  readonly boss: Boss
  readonly streams: ReadonlyArray<StreamSpec>
  readonly concurrency: number
  readonly counters: Counters
  readonly newRunId: () => string
}

interface Claimed {
  readonly stream: StreamSpec
  readonly queue: string
  /** the attempt: pg-boss settles it only while this worker's claim holds */
  readonly attempt: { readonly id: string; readonly retryCount: number }
}

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** The next job of any queue, from the one after the last that had one; none: undefined. */
const claimer = (boss: Boss, streams: ReadonlyArray<StreamSpec>) => {
  const queues = streams.map((stream) => ({ stream, queue: queueName(stream) }))
  let next = 0
  return Effect.gen(function*() {
    for (let i = 0; i < queues.length; i++) {
      const at = (next + i) % queues.length
      const { queue, stream } = queues[at]!
      const jobs = yield* Effect.tryPromise(() => boss.fetch(queue, { batchSize: 1 }))
      const job = jobs?.[0]
      if (job !== undefined) {
        next = at + 1
        return { stream, queue, attempt: { id: job.id, retryCount: job.retryCount } } satisfies Claimed
      }
    }
    return undefined
  }).pipe(
    Effect.catchAll((error) =>
      Effect.as(Effect.logWarning("worker.fetch_failed").pipe(Effect.annotateLogs({ reason: message(error.error) })), undefined)
    )
  )
}

/** Touches the job every half heartbeat; a claim found gone (the monitor failed the job) stops the run. */
const heartbeat = (boss: Boss, claimed: Claimed, run: Fiber.RuntimeFiber<unknown>) =>
  Effect.gen(function*() {
    const answer = yield* Effect.tryPromise(() => boss.touch(claimed.queue, [claimed.attempt])).pipe(Effect.either)
    if (answer._tag === "Left") {
      // the database did not answer: the claim may still hold; the monitor decides
      return yield* Effect.logWarning("job.heartbeat_failed").pipe(Effect.annotateLogs({ reason: message(answer.left.error) }))
    }
    const affected = (answer.right as { affected?: number }).affected
    if (affected === 0) {
      yield* Effect.logWarning("job.claim_lost").pipe(Effect.annotateLogs({
        reason: "pg-boss no longer counts this job as ours (a missed heartbeat): another worker may run it; stopping this run"
      }))
      yield* Fiber.interruptFork(run)
    }
  }).pipe(Effect.delay(Duration.seconds(heartbeatSeconds / 2)), Effect.forever)

const settle = (boss: Boss, claimed: Claimed, outcome: Outcome, output: object) => {
  const { attempt, queue } = claimed
  const call = outcome === "completed"
    ? () => boss.complete(queue, [attempt], output)
    : outcome === "failed"
    // pg-boss retries every failure of a queue alike: a failure for good is cancelled before its retry
    ? () => boss.fail(queue, [attempt], output).then(() => boss.cancel(queue, attempt.id))
    : () => boss.fail(queue, [attempt], output)
  return Effect.tryPromise(call).pipe(
    Effect.catchAll((error) =>
      // left active, its heartbeat stopped: the monitor fails it and it is retried
      Effect.logWarning("job.settle_failed").pipe(Effect.annotateLogs({ reason: message(error.error) }))
    )
  )
}

export const make = (options: DispatchOptions) =>
  Effect.gen(function*() {
    const { boss, counters } = options
    const slots = yield* Effect.makeSemaphore(options.concurrency)
    const running = new Set<Fiber.RuntimeFiber<unknown>>()
    const handlers = new Set<Fiber.RuntimeFiber<unknown>>()
    let stopping = false
    const claim = claimer(boss, options.streams)

    const handle = (claimed: Claimed) => {
      const runId = options.newRunId()
      return Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const startedAt = Date.now()
          counters.started()
          yield* Effect.logInfo("job.start").pipe(Effect.annotateLogs({ queue: claimed.queue, attempt: claimed.attempt.retryCount }))
          // claimed just as the stop began: handed back without a run
          const sync = stopping ? Effect.interrupt : syncStreamExit(claimed.stream, { runId, interruptedExitCode: () => ExitCode.SigTerm })
          const run = yield* Effect.fork(restore(sync))
          running.add(run)
          const beating = yield* Effect.fork(restore(heartbeat(boss, claimed, run)))
          const exit = yield* Fiber.await(run)
          running.delete(run)
          yield* Fiber.interrupt(beating)
          const summary = Exit.isSuccess(exit) ? exit.value.summary : undefined
          const interrupted = summary === undefined ? Exit.isInterrupted(exit) : summary.status === "interrupted"
          const exitCode = summary?.exitCode ?? (interrupted ? ExitCode.SigTerm : ExitCode.Software)
          if (Exit.isFailure(exit) && !interrupted) yield* Effect.logError("job.defect", Cause.squash(exit.cause))
          const outcome = outcomeOf(exitCode, interrupted)
          yield* settle(boss, claimed, outcome, { run_id: runId, exit_code: exitCode, error: summary?.error ?? null })
          counters.ended(claimed.stream.name, outcome)
          yield* Effect.logInfo("job.end").pipe(Effect.annotateLogs({ exit_code: exitCode, outcome, duration_ms: Date.now() - startedAt }))
        })
      ).pipe(Effect.annotateLogs({ stream: claimed.stream.name, job: claimed.attempt.id, run_id: runId }))
    }

    // claiming a job and starting its handler is one step that a stop does not cut in two
    const step = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        yield* restore(slots.take(1))
        const claimed = yield* claim
        if (claimed === undefined) {
          yield* slots.release(1)
          return false
        }
        // interruptible again inside: the handler masks what must not be cut itself (this step's mask
        // would otherwise be inherited, and make its run and heartbeat impossible to stop)
        const fiber = yield* Effect.forkDaemon(Effect.interruptible(Effect.ensuring(handle(claimed), slots.release(1))))
        handlers.add(fiber)
        fiber.addObserver(() => handlers.delete(fiber))
        return true
      })
    )
    const loop = yield* Effect.forkDaemon(
      Effect.forever(Effect.flatMap(step, (found) => (found ? Effect.void : Effect.sleep(pollIntervalMillis))))
    )

    /** No more claims; the running streams interrupted (each ends its transaction), their jobs handed back. */
    const stop = Effect.gen(function*() {
      stopping = true
      yield* Fiber.interrupt(loop)
      yield* Effect.logInfo("worker.stopping").pipe(Effect.annotateLogs({ running: running.size }))
      // until every handler has settled its job: a run that started after a pass is interrupted by the next
      while (handlers.size > 0) {
        yield* Fiber.interruptAll([...running])
        yield* Effect.sleep(20)
      }
    })
    return { stop, running: () => running.size }
  })
