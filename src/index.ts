/**
 * Ferry as a library, for an Effect application that brings its own SqlClient, HttpClient and logger:
 * define streams in code, provide the live layers of the three ports, run the sync program. The
 * in-memory layers for tests are the `ferry/testing` subpath (src/testing/index.ts).
 */

// --- streams ---------------------------------------------------------------------------------------
/** A stream's definition: `StreamSpec.make({ name, schema, source, incremental, target })`, and its types. */
export * as StreamSpec from "./domain/StreamSpec.js"

// --- the ports: what the sync program needs --------------------------------------------------------
/** Where pages of raw records come from; `Page` is one of them. */
export { type Page, Source, type SourceShape } from "./Source.js"
/** Where rows, quarantined records and run records go. */
export {
  type Prepared,
  type QuarantineItem,
  type QuarantineResult,
  type RunCounts,
  type RunRecord,
  type SchemaChange,
  Sink,
  type SinkShape,
  type Staged,
  type TargetState,
  type WriteResult
} from "./Sink.js"
/** Where each stream's cursor lives, keyed by stream and target table. */
export { type CheckpointKey, CheckpointStore, type CheckpointStoreShape } from "./CheckpointStore.js"

// --- their live layers ------------------------------------------------------------------------------
/** The HTTP source: `layer` over the application's HttpClient (`layerFetch`, `layerNode`: with one). */
export * as HttpSource from "./source/http/HttpSource.js"
/** The PostgreSQL sink: `layer(options?)` over the application's SqlClient. */
export * as PgSink from "./sink/postgres/PgSink.js"
/** Checkpoints in `ferry.state`, in the sink's transaction: `layer` over the SqlClient. */
export * as PostgresCheckpoints from "./checkpoint/PostgresCheckpoints.js"
/** Checkpoints in a JSON file, saved after each commit: `layer(path)`. */
export * as FileCheckpoints from "./checkpoint/FileCheckpoints.js"

// --- the program ------------------------------------------------------------------------------------
/**
 * Sync one stream (its summary, or its typed failure after the run is recorded), the same with the
 * summary beside the Exit (`syncStreamExit`: a failed run's counts too), or several streams in order.
 */
export { type Progress, syncAll, syncStream, syncStreamExit, type SyncOptions } from "./sync/Sync.js"
export type { StreamSummary } from "./sync/Summary.js"
/**
 * The run's redactor: `Effect.locally(CurrentRedactor, Redactor.empty.with(secrets))` keeps the secrets
 * out of `ferry.runs.error` (and out of the application's log lines, if its logger uses it).
 */
export { CurrentRedactor, Redactor } from "./domain/Secrets.js"

// --- errors -----------------------------------------------------------------------------------------
/** Every failure is a tagged error with a `message` and the process exit code it maps to. */
export {
  ConfigError,
  DatabaseError,
  ExitCode,
  type FerryError,
  InvalidRecords,
  LockHeld,
  RateLimited,
  SourceError,
  TargetMismatch,
  UsageError,
  worstExitCode
} from "./domain/Errors.js"

// --- the config file --------------------------------------------------------------------------------
/** A `ferry.config.yaml` read into streams and settings, as the CLI reads it: from a file, or from its text. */
export { type FerryConfigShape, load as loadConfig, parse as parseConfig } from "./config/Config.js"

/** This package's version. */
export { version } from "./version.js"
