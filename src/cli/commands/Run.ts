/** `ferry run`: sync the config's streams (or the named ones), with live progress; the worst exit code. */
import { Clock, Effect } from "effect"
import { worstExitCode } from "../../domain/Errors.js"
import { syncAll } from "../../sync/Sync.js"
import { sliceOf } from "../../sync/Window.js"
import type { Command } from "../Args.js"
import * as Progress from "../Progress.js"
import * as Wiring from "../Wiring.js"
import type { FerryConfigShape } from "../../config/Config.js"
import { type CommandEnvironment, selectStreams, withConfig } from "./CommandEnvironment.js"

export const run = (command: Extract<Command, { _tag: "run" }>, environment: CommandEnvironment, runId: string) =>
  withConfig(command.config, environment, (config) =>
    Effect.gen(function*() {
      const streams = yield* selectStreams(config, command.streams)
      // one `now` for the check and the run; a bad slice stops everything before anything runs (64)
      const now = yield* Clock.currentTimeMillis
      const slice = command.slice
      if (slice !== undefined) yield* Effect.forEach(streams, (stream) => sliceOf(stream, slice, now), { discard: true })
      const stray = Wiring.strayDataDir(config, environment)
      if (stray !== undefined) {
        yield* Effect.logWarning("embedded.elsewhere").pipe(Effect.annotateLogs({
          found: stray,
          using: Wiring.dataDir(config, environment),
          hint: "the embedded database lives beside the config file; move the directory found there " +
            "(or set FERRY_DATA_DIR to it) to keep its data and checkpoints"
        }))
      }
      const concurrency = yield* concurrencyOf(command, config)
      return yield* Effect.gen(function*() {
        const progress = yield* Progress.make({ tty: environment.stderrIsTTY })
        const summaries = yield* syncAll(streams, {
          runId,
          fullRefresh: command.fullRefresh,
          dryRun: command.dryRun,
          slice,
          now,
          onProgress: progress.update,
          interruptedExitCode: environment.interruptedExitCode,
          concurrency
        })
        return worstExitCode(summaries.map((s) => s.exitCode))
      }).pipe(
        Effect.provide(Wiring.layer(config, environment, 2, concurrency)),
        Effect.scoped
      )
    }))

/**
 * Streams at a time: `--concurrency`, else the config's. The embedded database is one session: its
 * streams run one after another whatever is asked, and the log says so.
 */
const concurrencyOf = (command: Extract<Command, { _tag: "run" }>, config: FerryConfigShape) => {
  const asked = command.concurrency ?? config.concurrency
  if (asked <= 1 || !Wiring.isEmbedded(config)) return Effect.succeed(asked)
  return Effect.as(
    Effect.logWarning("concurrency.embedded").pipe(Effect.annotateLogs({
      asked,
      using: 1,
      reason: "the embedded database has one session: streams run one after another; set database.url for parallel streams"
    })),
    1
  )
}
