/**
 * Ferry as a library: the services, their live and test layers, stream definitions, errors and the
 * sync program, for an Effect application that brings its own SqlClient, HttpClient and logger.
 */
export * as FileCheckpoints from "./checkpoint/FileCheckpoints.js"
export * as PostgresCheckpoints from "./checkpoint/PostgresCheckpoints.js"
export { CheckpointStore, type CheckpointStoreShape } from "./CheckpointStore.js"
export * as Config from "./config/Config.js"
export * as Cursor from "./domain/Cursor.js"
export * as Database from "./postgres/Database.js"
export * as EmbeddedPostgres from "./embedded/EmbeddedPostgres.js"
export * from "./domain/Errors.js"
export * as HttpSource from "./source/http/HttpSource.js"
export * as Logging from "./cli/Logging.js"
export * as Memory from "./testing/Memory.js"
export * as PgSink from "./sink/postgres/PgSink.js"
export * as RowDecoder from "./domain/RowDecoder.js"
export * as Services from "./cli/Wiring.js"
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
export * as StreamSpec from "./domain/StreamSpec.js"
export * as Sync from "./sync/Sync.js"
export { syncAll, syncStream, syncStreamExit, type SyncOptions } from "./sync/Sync.js"
export type { StreamSummary } from "./sync/Summary.js"
export { version } from "./version.js"
