/**
 * Every way a Ferry run can fail, as data. Each error carries the sysexits code
 * that `main` hands to cron (see README "Exit codes"). Messages never hold secrets:
 * URLs are redacted before they get here, database errors name the host only.
 */
import { Schema } from "effect"

export const ExitCode = {
  Ok: 0,
  /** `ferry check --fresh`: a stream's last success is older than its max age (the check itself ran) */
  Stale: 2,
  Usage: 64,
  Data: 65,
  Unavailable: 69,
  Software: 70,
  IoErr: 74,
  TempFail: 75,
  Config: 78,
  SigInt: 130,
  SigTerm: 143
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** 64: unknown command, flag or argument. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  message: Schema.String
}) {
  readonly exitCode = ExitCode.Usage
}

/** 78: the configuration is invalid. `path` names the field (e.g. `streams[0].source.url`) or the variable. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  path: Schema.String,
  reason: Schema.String
}) {
  readonly exitCode = ExitCode.Config
  override get message() {
    return this.path === "" ? this.reason : `${this.path}: ${this.reason}`
  }
}

/**
 * 78: the target table exists with columns that do not fit the stream, in a way Ferry does not change
 * by itself (a type, a primary key, a column it cannot write). `sql`: the statements that would make it fit.
 */
export class TargetMismatch extends Schema.TaggedError<TargetMismatch>()("TargetMismatch", {
  table: Schema.String,
  problems: Schema.Array(Schema.String),
  sql: Schema.optional(Schema.Array(Schema.String))
}) {
  readonly exitCode = ExitCode.Config
  override get message() {
    const fix = this.sql === undefined || this.sql.length === 0
      ? ""
      : `. Ferry changed nothing; to make the table fit, run: ${this.sql.join(" ")} (or drop the table and run with --full-refresh)`
    return `table ${this.table} exists but does not fit the stream: ${this.problems.join("; ")}${fix}`
  }
}

/** 69: the source failed after retries, answered 4xx, or sent something that is not a page of records. */
export class SourceError extends Schema.TaggedError<SourceError>()("SourceError", {
  stream: Schema.String,
  /** the request URL with secrets removed */
  url: Schema.String,
  status: Schema.optional(Schema.Number),
  reason: Schema.String,
  /** retries made before giving up, for the run summary */
  retries: Schema.optional(Schema.Number)
}) {
  readonly exitCode = ExitCode.Unavailable
  override get message() {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    return `${this.reason}${status} at ${this.url}`
  }
}

/** 75: the source kept rate-limiting past the retry budget; committed progress is kept. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  stream: Schema.String,
  url: Schema.String,
  status: Schema.Number,
  reason: Schema.String,
  /** retries made before giving up, for the run summary */
  retries: Schema.optional(Schema.Number)
}) {
  readonly exitCode = ExitCode.TempFail
  override get message() {
    return `${this.reason} (HTTP ${this.status}) at ${this.url}`
  }
}

/** 65: more invalid records than the stream's `maxInvalid`; they are in ferry.quarantine, the valid ones are committed. */
export class InvalidRecords extends Schema.TaggedError<InvalidRecords>()("InvalidRecords", {
  stream: Schema.String,
  quarantined: Schema.Number,
  maxInvalid: Schema.Number
}) {
  readonly exitCode = ExitCode.Data
  override get message() {
    return `${this.quarantined} invalid record(s) quarantined in ferry.quarantine, over maxInvalid ${this.maxInvalid}`
  }
}

/**
 * 74: the database is unreachable or a statement failed. `reason` names the host, never the password.
 * `temporary`: 75 instead, a wait that ran out (`database.lockTimeout`: another session held a lock
 * Ferry needed); trying again later is the remedy, as for LockHeld.
 */
export class DatabaseError extends Schema.TaggedError<DatabaseError>()("DatabaseError", {
  reason: Schema.String,
  temporary: Schema.optional(Schema.Boolean)
}) {
  get exitCode(): typeof ExitCode.IoErr | typeof ExitCode.TempFail {
    return this.temporary === true ? ExitCode.TempFail : ExitCode.IoErr
  }
  override get message() {
    return this.reason
  }
}

/**
 * 75: another run holds the stream's lock (the lock of the stream and its `target` table). `stream` is
 * "*" for the embedded database, whose data directory is locked as a whole; `holder` then says which
 * directory and which process.
 */
export class LockHeld extends Schema.TaggedError<LockHeld>()("LockHeld", {
  stream: Schema.String,
  target: Schema.optional(Schema.String),
  holder: Schema.String
}) {
  readonly exitCode = ExitCode.TempFail
  override get message() {
    const into = this.target === undefined ? "" : ` into ${this.target}`
    return this.stream === "*"
      ? `${this.holder}; try again later`
      : `stream ${this.stream} is being synced by another run${into} (${this.holder}); try again later`
  }
}

export type FerryError =
  | UsageError
  | ConfigError
  | TargetMismatch
  | SourceError
  | RateLimited
  | InvalidRecords
  | DatabaseError
  | LockHeld

/**
 * When several streams fail differently, the process exits with the most serious code:
 * a defect, then the database, configuration, source, data, and last the "try again" 75.
 */
const precedence: ReadonlyArray<number> = [
  ExitCode.Software,
  ExitCode.SigTerm,
  ExitCode.SigInt,
  ExitCode.IoErr,
  ExitCode.Config,
  ExitCode.Usage,
  ExitCode.Unavailable,
  ExitCode.Data,
  ExitCode.TempFail
]

export const worstExitCode = (codes: ReadonlyArray<number>): number => {
  for (const code of precedence) if (codes.includes(code)) return code
  return codes.find((c) => c !== 0) ?? ExitCode.Ok
}
