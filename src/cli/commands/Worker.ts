/**
 * `ferry worker`: a long-lived process that takes the config's stream jobs from pg-boss (src/worker/)
 * and runs them with `ferry run`'s program, on one set of services (the Wiring layer) built once for
 * its life. A first SIGTERM/SIGINT (`environment.stopRequested`) stops it gracefully: no more jobs,
 * running streams end their current transaction, their jobs go back to the queue, pg-boss stops; exit
 * 0, or 143 when that took longer than `--grace` (the jobs still running are then taken over when their
 * heartbeat stops, as a killed worker's). A second signal exits at once (main.ts).
 */
import { Effect, Either, Option, Redacted, Runtime } from "effect"
import type { FerryConfigShape } from "../../config/Config.js"
import { ConfigError, ExitCode } from "../../domain/Errors.js"
import * as Database from "../../postgres/Database.js"
import * as PgTls from "../../postgres/Tls.js"
import * as Boss from "../../worker/Boss.js"
import { Counters } from "../../worker/Counters.js"
import * as Dispatch from "../../worker/Dispatch.js"
import * as Health from "../../worker/Health.js"
import * as Metrics from "../../worker/Metrics.js"
import { jobsSchema } from "../../worker/Queues.js"
import * as Schedules from "../../worker/Schedules.js"
import type { Command } from "../Args.js"
import * as Wiring from "../Wiring.js"
import { type CommandEnvironment, newRunId, withConfig } from "./CommandEnvironment.js"

/** pg-boss's connection: the config's server, TLS as for Ferry's own (sslmode, certificates) */
export const connectionOf = (config: FerryConfigShape, environment: CommandEnvironment, command: string) =>
  Effect.gen(function*() {
    if (Option.isNone(config.database.url)) {
      return yield* new ConfigError({
        path: "database.url",
        reason: `ferry ${command} needs database.url: the job queue lives in a Postgres server that every worker reaches ` +
          "(the embedded database belongs to one process)"
      })
    }
    const url = config.database.url.value
    const tls = yield* Either.match(PgTls.fromUrl(Redacted.value(url), { env: environment.env }), {
      onLeft: Effect.fail,
      onRight: Effect.succeed
    })
    return {
      connectionString: tls.url,
      ssl: tls.ssl,
      describe: Database.describe(url),
      applicationName: `${Database.defaultApplicationName()} ${command}`,
      retryPlain: tls.plainIfRefused ? PgTls.isTlsRefused : undefined
    } satisfies Boss.Connection
  })

/** what pg-boss reports in the background, as a log line of the worker's */
const reporter = Effect.map(Effect.runtime<never>(), (runtime) => (error: unknown) =>
  Runtime.runFork(runtime)(
    Effect.logWarning("worker.pgboss_error").pipe(Effect.annotateLogs({ reason: error instanceof Error ? error.message : String(error) }))
  ))

export const worker = (command: Extract<Command, { _tag: "worker" }>, environment: CommandEnvironment) =>
  Effect.zipRight(
    Boss.requireNode("worker", environment.nodeVersion ?? process.versions.node),
    withConfig(command.config, environment, (config) =>
      Effect.gen(function*() {
        const connection = yield* connectionOf(config, environment, "worker")
        const concurrency = command.concurrency ?? config.concurrency
        return yield* Effect.scoped(Effect.gen(function*() {
          const counters = new Counters()
          let stopBy: number | undefined
          const boss = yield* Boss.make({
            connection,
            worker: true,
            // fetches, heartbeats and settlements of `concurrency` jobs, and pg-boss's maintenance
            poolSize: concurrency + 4,
            // what is left of the grace period when the scope closes
            stopMillis: () => (stopBy === undefined ? command.graceMillis : Math.max(0, stopBy - Date.now())),
            onError: yield* reporter
          })
          yield* Boss.ensureQueues(boss, config.streams)
          const schedules = yield* Schedules.apply(boss, config.streams, config.schedules)
          const dispatch = yield* Dispatch.make({ boss, streams: config.streams, concurrency, counters, newRunId })
          let stopping = false
          if (command.listen !== undefined) {
            yield* Health.serve(command.listen, {
              unhealthy: Effect.suspend(() =>
                stopping ? Effect.succeed("stopping") : Effect.tryPromise(() => boss.getDb().executeSql("SELECT 1")).pipe(
                  Effect.timeout(2000),
                  Effect.as(undefined),
                  Effect.catchAll((error) => Effect.succeed(`the job queue's database does not answer (${String(error)})`))
                )
              ),
              metrics: Metrics.families(counters, config.file, config.streams)
            })
          }
          yield* Effect.logInfo("worker.start").pipe(Effect.annotateLogs({
            streams: config.streams.map((s) => s.name),
            concurrency,
            jobs_schema: jobsSchema,
            scheduled: schedules.scheduled,
            unscheduled: schedules.unscheduled,
            listen: command.listen === undefined ? null : `${command.listen.host}:${command.listen.port}`,
            pid: process.pid
          }))
          yield* Effect.promise(() => environment.stopRequested ?? new Promise<never>(() => {}))
          stopping = true
          stopBy = Date.now() + command.graceMillis
          const stopped = yield* dispatch.stop.pipe(Effect.timeout(command.graceMillis), Effect.option)
          if (Option.isNone(stopped)) {
            yield* Effect.logWarning("worker.grace_expired").pipe(Effect.annotateLogs({
              grace_ms: command.graceMillis,
              running: dispatch.running(),
              hint: "their jobs go to another worker once their heartbeat stops; raise --grace for longer transactions"
            }))
            return ExitCode.SigTerm as number
          }
          yield* Effect.logInfo("worker.stopped")
          return ExitCode.Ok as number
        })).pipe(Effect.provide(Wiring.layer(config, environment, 2, concurrency)))
      }))
  )
