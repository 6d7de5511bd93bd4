/**
 * What each command does, as an Effect that ends in an exit code (one module per command in
 * `commands/`). Every failure is logged once, as one line naming what is wrong, and mapped to its
 * documented code; a defect (a bug in Ferry) is the only thing that logs a stack, and exits 70.
 */
import { Effect } from "effect"
import * as Config from "../config/Config.js"
import { ExitCode } from "../domain/Errors.js"
import * as Failpoint from "../lib/Failpoint.js"
import type { Command } from "./Args.js"
import { check } from "./commands/Check.js"
import { enqueue } from "./commands/Enqueue.js"
import { type CommandEnvironment, newRunId, reported } from "./commands/CommandEnvironment.js"
import { reset } from "./commands/Reset.js"
import { run } from "./commands/Run.js"
import { sql } from "./commands/Sql.js"
import { status } from "./commands/Status.js"
import * as Telemetry from "./Telemetry.js"
import { worker } from "./commands/Worker.js"

export { type CommandEnvironment, newRunId }

const dispatch = (command: Command, environment: CommandEnvironment, runId: string): Effect.Effect<number, unknown> => {
  switch (command._tag) {
    case "run":
      // traces and metrics when an OTLP endpoint is set (Telemetry.ts); the other commands send none
      return Telemetry.around(environment, (told) => run(command, told, runId))
    case "worker":
      // a worker's job runs are exported the same way (a root span per job's run)
      return Telemetry.around(environment, (told) => worker(command, told))
    case "enqueue":
      return enqueue(command, environment)
    case "check":
      return check(command, environment)
    case "status":
      return status(command, environment)
    case "reset":
      return reset(command, environment)
    case "sql":
      return sql(command, environment)
    case "schema":
      return Effect.sync(() => {
        environment.stdout(JSON.stringify(Config.jsonSchema(), null, 2))
        return ExitCode.Ok
      })
    case "help":
    case "version":
      return Effect.succeed(ExitCode.Ok)
  }
}

/** Runs a command: its exit code, with every error logged once and mapped to its code. */
export const execute = (command: Command, environment: CommandEnvironment): Effect.Effect<number> => {
  // every log line carries run_id and stream, also those before any stream starts (stream: null)
  const runId = environment.runId ?? newRunId()
  // FERRY_FAILPOINT (a testing aid) is configuration: unreadable, it is a 78 before anything runs.
  // `reported` here too: a failure before the config is loaded (the config itself) is logged the same way.
  return reported(Effect.zipRight(Failpoint.validate, dispatch(command, environment, runId))).pipe(
    Effect.annotateLogs({ run_id: runId, stream: null })
  )
}
