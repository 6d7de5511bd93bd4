/** `ferry run`: sync the config's streams (or the named ones), with live progress; the worst exit code. */
import { Cause, Clock, Effect, Exit, Option } from "effect"
import { isAbsolute, resolve } from "node:path"
import * as Cursor from "../../domain/Cursor.js"
import { ExitCode, worstExitCode } from "../../domain/Errors.js"
import type { StreamSpec } from "../../domain/StreamSpec.js"
import * as TextFile from "../../metrics/TextFile.js"
import type { StreamSummary } from "../../sync/Summary.js"
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
      const ended: Array<StreamSummary> = []
      const running = Effect.gen(function*() {
        const progress = yield* Progress.make({ tty: environment.stderrIsTTY })
        const summaries = yield* syncAll(streams, {
          runId,
          fullRefresh: command.fullRefresh,
          dryRun: command.dryRun,
          slice,
          now,
          onProgress: progress.update,
          interruptedExitCode: environment.interruptedExitCode,
          concurrency,
          onSummary: (summary) => ended.push(summary)
        })
        return worstExitCode(summaries.map((s) => s.exitCode))
      }).pipe(
        Effect.provide(Wiring.layer(config, environment, 2, concurrency)),
        Effect.scoped
      )
      const metricsFile = metricsFileOf(command, environment)
      // a dry run or a slice says nothing about the stream's freshness: the file stays as it was
      if (metricsFile === undefined || command.dryRun || slice !== undefined) return yield* running
      return yield* running.pipe(Effect.onExit((exit) =>
        Effect.flatMap(Clock.currentTimeMillis, (endedAt) =>
          TextFile.write(metricsFile, {
            config: config.file,
            streams: config.streams.map((s) => s.name),
            ran: outcomes(streams, ended, codeOf(exit, environment), endedAt)
          }, endedAt))
      ))
    }))

/** `--metrics-file`, else FERRY_METRICS_FILE; relative to the working directory */
const metricsFileOf = (command: Extract<Command, { _tag: "run" }>, environment: CommandEnvironment): string | undefined => {
  const path = command.metricsFile ?? (environment.env.FERRY_METRICS_FILE?.trim() || undefined)
  return path === undefined ? undefined : isAbsolute(path) ? path : resolve(environment.cwd, path)
}

/** the exit code a run's end stands for (as `reported` will map a failure) */
const codeOf = (exit: Exit.Exit<number, unknown>, environment: CommandEnvironment): number =>
  Exit.match(exit, {
    onSuccess: (code) => code,
    onFailure: (cause) =>
      Cause.isInterruptedOnly(cause)
        ? environment.interruptedExitCode?.() ?? ExitCode.SigTerm
        : Option.match(Cause.failureOption(cause), {
          onNone: () => ExitCode.Software,
          onSome: (error) => typeof error === "object" && error !== null && "exitCode" in error ? Number(error.exitCode) : ExitCode.Software
        })
  })

/** each selected stream's outcome: its summary, or the run's code when it ended before the stream began */
const outcomes = (streams: ReadonlyArray<StreamSpec>, ended: ReadonlyArray<StreamSummary>, code: number, now: number) =>
  streams.map((stream): TextFile.StreamOutcome => {
    const summary = ended.find((s) => s.stream === stream.name)
    const checkpoint = summary?.checkpoint
    const at = checkpoint !== undefined && Cursor.typeOf(stream) === "timestamp" ? Cursor.instantOf(checkpoint) : NaN
    return {
      stream: stream.name,
      summary,
      exitCode: summary?.exitCode ?? code,
      lagSeconds: Number.isNaN(at) ? undefined : Math.max(0, (now - at) / 1000)
    }
  })

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
