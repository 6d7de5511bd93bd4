/**
 * `ferry enqueue --stream NAME`: one job for the stream's queue, now, for whichever worker is free.
 * The queue holds at most one queued job per stream (Queues.ts): a second enqueue while one waits adds
 * nothing, and says so. Exit 0 either way.
 */
import { Effect } from "effect"
import * as Boss from "../../worker/Boss.js"
import { type JobData, queueName } from "../../worker/Queues.js"
import type { Command } from "../Args.js"
import { type CommandEnvironment, redactedStdout, selectStreams, withConfig } from "./CommandEnvironment.js"
import { connectionOf } from "./Worker.js"
import { ExitCode } from "../../domain/Errors.js"

export const enqueue = (command: Extract<Command, { _tag: "enqueue" }>, environment: CommandEnvironment) =>
  Effect.zipRight(
    Boss.requireNode("enqueue", environment.nodeVersion ?? process.versions.node),
    withConfig(command.config, environment, (config) =>
      Effect.gen(function*() {
        const [stream] = yield* selectStreams(config, [command.stream])
        const connection = yield* connectionOf(config, environment, "enqueue")
        const print = yield* redactedStdout(environment)
        return yield* Effect.scoped(Effect.gen(function*() {
          const boss = yield* Boss.make({ connection, worker: false, poolSize: 2, stopMillis: () => 1000, onError: () => {} })
          yield* Boss.ensureQueues(boss, [stream!])
          const queue = queueName(stream!)
          const data: JobData = { stream: stream!.name }
          const id = yield* Effect.tryPromise({ try: () => boss.send(queue, data), catch: Boss.failure(`could not queue a job for stream "${stream!.name}"`) })
          if (id === null) {
            print(`${stream!.name}: a job is already queued for this stream; pg-boss kept that one and dropped this one`)
          } else {
            print(`${stream!.name}: queued job ${id}`)
          }
          yield* Effect.logInfo("enqueue.sent").pipe(Effect.annotateLogs({ stream: stream!.name, queue, job: id, dropped: id === null }))
          return ExitCode.Ok as number
        }))
      }))
  )
