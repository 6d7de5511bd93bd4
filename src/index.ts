/**
 * Ferry as a library: the services, their live and test layers, stream definitions, errors and the
 * sync program, for an Effect application that brings its own SqlClient, HttpClient and logger.
 */
export * as Checkpoint from "./Checkpoint.js"
export { CheckpointStore, type CheckpointStoreShape } from "./Checkpoint.js"
export * as Config from "./Config.js"
export * as Cursor from "./Cursor.js"
export * as Database from "./Database.js"
export * as EmbeddedPostgres from "./embedded/EmbeddedPostgres.js"
export * from "./Errors.js"
export * as HttpSource from "./http/HttpSource.js"
export * as Logging from "./Logging.js"
export * as Memory from "./Memory.js"
export * as PgSink from "./PgSink.js"
export * as RowDecoder from "./RowDecoder.js"
export * as Services from "./Services.js"
export {
  Sink,
  type QuarantineResult,
  type RunCounts,
  type RunRecord,
  type SinkShape,
  type TargetState,
  type WriteResult
} from "./Sink.js"
export * as SourceModule from "./Source.js"
export { Source, type Page, type SourceShape } from "./Source.js"
export * as StreamSpec from "./StreamSpec.js"
export * as Sync from "./Sync.js"
export { runStream, syncAll, syncStream, type StreamSummary, type SyncOptions } from "./Sync.js"
export { version } from "./version.js"
