/**
 * What every command shares: the process's environment as a value (no global read), the config loaded
 * once with its secrets made the run's redactor, one way to report a failure, and the few helpers more
 * than one command uses.
 */
import { randomBytes } from "node:crypto"
import { Cause, Effect } from "effect"
import * as Config from "../../config/Config.js"
import { ExitCode, type FerryError, UsageError } from "../../domain/Errors.js"
import { CurrentRedactor } from "../../domain/Secrets.js"
import * as Proxy from "../../source/http/Proxy.js"
import type * as Wiring from "../Wiring.js"

export interface CommandEnvironment extends Wiring.Environment {
  readonly stdout: (text: string) => void
  readonly stderrIsTTY: boolean
  /** the exit code of an interruption, by the signal that caused it (130 SIGINT, 143 SIGTERM) */
  readonly interruptedExitCode?: (() => number) | undefined
  /** the id every log line of this process carries; default a new one */
  readonly runId?: string | undefined
  /**
   * Told the config's secrets once it is loaded: the process redacts what it writes outside the
   * logger (libraries' stray output, its own last-resort error line) with them (`main`).
   */
  readonly onSecrets?: ((secrets: ReadonlyArray<string>) => void) | undefined
  /** `ferry worker`: settles at the first SIGTERM/SIGINT, which stops it gracefully (main.ts) */
  readonly stopRequested?: Promise<void> | undefined
  /** the Node version the commands that need a newer one check (default: this process's) */
  readonly nodeVersion?: string | undefined
}

export const newRunId = (): string => `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`

const isFerryError = (u: unknown): u is FerryError => typeof u === "object" && u !== null && "exitCode" in u && "_tag" in u

/** A command's exit code, with every failure logged once and mapped to its code; a defect exits 70. */
export const reported = <R>(program: Effect.Effect<number, unknown, R>): Effect.Effect<number, never, R> =>
  program.pipe(
    Effect.catchAll((error) =>
      isFerryError(error)
        ? Effect.as(
          Effect.logError(error.message).pipe(Effect.annotateLogs({ error: error._tag, exit_code: error.exitCode })),
          error.exitCode as number
        )
        : Effect.as(Effect.logError("internal error", Cause.fail(error)), ExitCode.Software as number)
    ),
    Effect.catchAllDefect((defect) => Effect.as(Effect.logError("internal error", Cause.die(defect)), ExitCode.Software as number))
  )

/**
 * Loads the config, then runs `body` with the config's secrets added to the run's redactor
 * (`CurrentRedactor`): every line logged from then on, the command's own failure included, is
 * redacted with them; and only in this command, not in another that runs in the same process.
 */
export const withConfig = <R>(
  path: string | undefined,
  environment: CommandEnvironment,
  body: (config: Config.FerryConfigShape) => Effect.Effect<number, unknown, R>
): Effect.Effect<number, unknown, R> =>
  Effect.flatMap(Config.load({ path, env: { ...environment.env }, cwd: environment.cwd }), (config) => {
    // a proxy's password is never put in a message; this makes sure, as for the config's own secrets
    const secrets = [...config.secrets, ...Proxy.secretsOf(environment.env)]
    environment.onSecrets?.(secrets)
    return Effect.locallyWith(reported(body(config)), CurrentRedactor, (redactor) => redactor.with(secrets))
  })

/**
 * stdout for what Ferry itself says (`check`, `status`): no configured secret in it (the run's
 * redactor). `sql` prints the user's own data as it is.
 */
export const redactedStdout = (environment: CommandEnvironment) =>
  Effect.map(CurrentRedactor, (redactor) => (text: string) => environment.stdout(redactor.redact(text)))

export const selectStreams = (config: Config.FerryConfigShape, names: ReadonlyArray<string>) => {
  if (names.length === 0) return Effect.succeed(config.streams)
  const known = new Map(config.streams.map((s) => [s.name, s]))
  const missing = names.filter((n) => !known.has(n))
  return missing.length > 0
    ? Effect.fail(
      new UsageError({
        message: `unknown stream ${missing.map((m) => `"${m}"`).join(", ")}; the config has ${
          config.streams.map((s) => s.name).join(", ")
        }`
      })
    )
    : Effect.succeed([...new Set(names)].map((n) => known.get(n)!))
}

/** what the looking commands say of an embedded database that no run has created */
export const notCreatedYet = "not created yet (the first `ferry run` creates it)"
