/**
 * The `ferry` process: argv -> command -> layers -> exit code. Signals interrupt the run, which
 * finishes its current transaction first (Sync makes each one uninterruptible), then exits 130/143.
 * `ferry worker` is told to stop instead (its own graceful stop, exit 0); a second signal exits at once.
 */
import { Effect, Either, Exit, Fiber } from "effect"
import * as Cli from "./Args.js"
import * as Commands from "./Commands.js"
import { ExitCode } from "../domain/Errors.js"
import { Redactor } from "../domain/Secrets.js"
import * as Logging from "./Logging.js"
import * as StrayOutput from "./StrayOutput.js"
import { version } from "../version.js"

/**
 * The process's own redactor, for what it writes outside the logger: libraries' stray output (captured
 * as JSON lines) and the last-resort internal-error line. The command tells it the config's secrets;
 * the logger uses the run's redactor (`CurrentRedactor`), set by the command.
 */
let processRedactor = Redactor.empty

const main = async (): Promise<number> => {
  const runId = Commands.newRunId()
  const stderrIsTTY = process.stderr.isTTY === true
  const logging = Logging.optionsFromEnv(process.env, stderrIsTTY)
  if (logging.format === "json") StrayOutput.captureAsJson({ runId, redact: (line) => processRedactor.redact(line) })
  const parsed = Cli.parse(process.argv.slice(2))
  if (Either.isLeft(parsed)) {
    // For a person (pretty): the problem, then the usage. For a log (JSON): one line, like every other
    // error; the usage text would bury it in a cron log.
    const options = logging
    const message = `${parsed.left.message} (ferry --help shows the usage)`
    if (options.format === "pretty") process.stderr.write(`ferry: ${parsed.left.message}\n\n${Cli.usage}\n`)
    else {
      Effect.runSync(Effect.logError(message).pipe(
        Effect.annotateLogs({ run_id: runId, stream: null, error: "UsageError", exit_code: ExitCode.Usage }),
        Effect.provide(Logging.layer(options))
      ))
    }
    return ExitCode.Usage
  }
  const command = parsed.right
  if (command._tag === "help") {
    process.stdout.write(`${Cli.usage}\n`)
    return ExitCode.Ok
  }
  if (command._tag === "version") {
    process.stdout.write(`ferry ${version}\n`)
    return ExitCode.Ok
  }
  let signal: "SIGINT" | "SIGTERM" | undefined
  // `ferry worker` lives until a signal, which stops it gracefully (it then exits 0); other commands are interrupted
  const longLived = command._tag === "worker"
  let requestStop = () => {}
  const stopRequested = new Promise<void>((resolve) => {
    requestStop = resolve
  })
  const program = Commands.execute(command, {
    runId,
    env: process.env,
    cwd: process.cwd(),
    stdout: (text) => void process.stdout.write(text + "\n"),
    stderrIsTTY,
    onSecrets: (secrets) => {
      processRedactor = processRedactor.with(secrets)
    },
    interruptedExitCode: () => (signal === "SIGINT" ? ExitCode.SigInt : ExitCode.SigTerm),
    stopRequested
  }).pipe(Effect.provide(Logging.layer(logging)))

  const fiber = Effect.runFork(program)
  const onSignal = (received: "SIGINT" | "SIGTERM") => {
    if (signal !== undefined) {
      // A second signal: the user insists. The open transaction, if any, is rolled back by Postgres.
      process.stderr.write(`ferry: ${received} again, exiting now\n`)
      process.exit(received === "SIGINT" ? ExitCode.SigInt : ExitCode.SigTerm)
    }
    signal = received
    if (longLived) requestStop()
    else Effect.runFork(Fiber.interrupt(fiber))
  }
  const onInt = () => onSignal("SIGINT")
  const onTerm = () => onSignal("SIGTERM")
  process.on("SIGINT", onInt)
  process.on("SIGTERM", onTerm)
  const exit = await Effect.runPromise(Fiber.await(fiber))
  process.off("SIGINT", onInt)
  process.off("SIGTERM", onTerm)
  if (signal !== undefined && !longLived) return signal === "SIGINT" ? ExitCode.SigInt : ExitCode.SigTerm
  return Exit.isSuccess(exit) ? exit.value : ExitCode.Software
}

main().then(
  (code) => {
    process.exitCode = code
    // Everything is closed by now; if some handle still holds the event loop, do not let cron wait.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (error) => {
    // outside the logger, so redacted here (the config's secrets are registered by then, if it loaded)
    process.stderr.write(processRedactor.redact(`ferry: internal error: ${error instanceof Error ? error.stack : String(error)}`) + "\n")
    process.exit(ExitCode.Software)
  }
)
