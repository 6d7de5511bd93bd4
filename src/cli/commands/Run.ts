/** `ferry run`: sync the config's streams (or the named ones), with live progress; the worst exit code. */
import { Clock, Effect } from "effect"
import { worstExitCode } from "../../domain/Errors.js"
import { syncAll } from "../../sync/Sync.js"
import { sliceOf } from "../../sync/Window.js"
import type { Command } from "../Args.js"
import * as Progress from "../Progress.js"
import * as Wiring from "../Wiring.js"
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
      return yield* Effect.gen(function*() {
        const progress = yield* Progress.make({ tty: environment.stderrIsTTY })
        const summaries = yield* syncAll(streams, {
          runId,
          fullRefresh: command.fullRefresh,
          dryRun: command.dryRun,
          slice,
          now,
          onProgress: progress.update,
          interruptedExitCode: environment.interruptedExitCode
        })
        return worstExitCode(summaries.map((s) => s.exitCode))
      }).pipe(
        Effect.provide(Wiring.layer(config, environment)),
        Effect.scoped
      )
    }))
