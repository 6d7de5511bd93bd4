/**
 * The live services for a loaded configuration: the database (a server from `database.url`, or the
 * embedded one), the Postgres sink, the configured checkpoint store and the HTTP source.
 */
import type { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Either, Layer, Option, Redacted } from "effect"
import { dirname } from "node:path"
import * as FileCheckpoints from "../checkpoint/FileCheckpoints.js"
import * as PostgresCheckpoints from "../checkpoint/PostgresCheckpoints.js"
import type { CheckpointStore } from "../CheckpointStore.js"
import type { FerryConfigShape } from "../config/Config.js"
import * as Database from "../postgres/Database.js"
import * as DataDirLock from "../embedded/DataDirLock.js"
import * as EmbeddedPostgres from "../embedded/EmbeddedPostgres.js"
import type { ConfigError, DatabaseError, LockHeld } from "../domain/Errors.js"
import * as HttpSource from "../source/http/HttpSource.js"
import * as Proxy from "../source/http/Proxy.js"
import * as PgSink from "../sink/postgres/PgSink.js"
import type { Sink } from "../Sink.js"
import type { Source } from "../Source.js"

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
}

/** The embedded database's data directory: `FERRY_DATA_DIR` or `.ferry/pgdata`, beside the config file. */
export const dataDir = (config: FerryConfigShape, environment: Environment): string =>
  EmbeddedPostgres.defaultDataDir(environment.env, dirname(config.file))

/** Where the data lives, for messages: `host:port/db`, or the embedded data directory. */
export const describeDatabase = (config: FerryConfigShape, environment: Environment): string =>
  Option.match(config.database.url, {
    onSome: Database.describe,
    onNone: () => `embedded Postgres in ${dataDir(config, environment)}`
  })

export const isEmbedded = (config: FerryConfigShape): boolean => Option.isNone(config.database.url)

/**
 * false only for an embedded database that has not been created yet: the commands that only look
 * (`status`, `check`, `sql`, `reset`) say so instead of creating one (an initdb, seconds and a directory
 * nobody asked for, in a place the user may have mistyped).
 */
export const databaseExists = (config: FerryConfigShape, environment: Environment): boolean =>
  !isEmbedded(config) || EmbeddedPostgres.exists(dataDir(config, environment))

/**
 * Before a run creates the embedded database: a database in the working directory's `.ferry/pgdata`
 * (where earlier releases put it, following the working directory) is most likely this config's data.
 */
export const strayDataDir = (config: FerryConfigShape, environment: Environment): string | undefined => {
  if (!isEmbedded(config) || (environment.env.FERRY_DATA_DIR ?? "").trim() !== "") return undefined
  const wanted = dataDir(config, environment)
  const old = EmbeddedPostgres.defaultDataDir({}, environment.cwd)
  return old !== wanted && !EmbeddedPostgres.exists(wanted) && EmbeddedPostgres.exists(old) ? old : undefined
}

/**
 * The configured server, or the embedded database on one connection (PGlite has one session; its
 * data directory lock gives single flight, so there is no advisory lock on that path). `connections`:
 * how many to open at start, at once (a command that takes a stream's lock needs two).
 */
export const database = (
  config: FerryConfigShape,
  environment: Environment,
  connections = 1,
  maxConnections?: number
): Layer.Layer<SqlClient | PgClient.PgClient, DatabaseError | LockHeld | ConfigError> =>
  Option.match(config.database.url, {
    onSome: (url) =>
      Database.layer({
        url,
        connections,
        maxConnections,
        env: environment.env,
        // bounded waits (a lock held by another session, a statement that never ends); PGlite has one
        // session (no lock to wait for) and no timers to cut a statement: nothing to set there
        sessionOptions: Database.timeoutOptions(Redacted.value(url), {
          lockTimeout: config.database.lockTimeout,
          statementTimeout: config.database.statementTimeout,
          idleInTransactionTimeout: config.lease
        })
      }),
    onNone: () =>
      Layer.unwrapScoped(
        Effect.map(
          EmbeddedPostgres.start({ dataDir: dataDir(config, environment) }),
          ({ url }) => Database.layer({ url, ...EmbeddedPostgres.clientOptions })
        )
      )
  })

const checkpointStore = (config: FerryConfigShape): Layer.Layer<CheckpointStore, never, SqlClient> =>
  config.checkpoint.store === "file" ? FileCheckpoints.layer(config.checkpoint.path) : PostgresCheckpoints.layer

/**
 * The bin's HTTP client: node:http with keep-alive (fetch costs 55–120 ms of start-up; docs/PERFORMANCE.md),
 * through the proxies of the environment when one is set; a malformed proxy variable is a config error.
 */
export const source = (environment: Environment): Layer.Layer<Source, ConfigError> =>
  Either.match(Proxy.fromEnv(environment.env), { onLeft: (error) => Layer.fail(error), onRight: httpSource })

const httpSource = (proxies: Proxy.ProxySettings | undefined): Layer.Layer<Source> =>
  proxies === undefined ? HttpSource.layerNode : HttpSource.layerNodeProxied(proxies)

/**
 * What the commands that read or clear Ferry's state need (`status`, `reset`): the database, the sink and
 * the checkpoint store, no HTTP source (a proxy variable is none of their business). `connections`: how
 * many to open at start; default two, as a command that takes a stream's lock holds two (`status` takes
 * none). `concurrency`: streams at a time; the pool holds two connections for each (its lock's and its
 * transaction's), and pg's default of 10 at least.
 */
export const stateLayer = (
  config: FerryConfigShape,
  environment: Environment,
  connections = 2,
  concurrency = 1
): Layer.Layer<Sink | CheckpointStore | SqlClient, DatabaseError | LockHeld | ConfigError> =>
  Layer.merge(
    // the embedded database: no advisory locks (one session: its data directory's lock excludes other
    // runs, and is what `verifyLock` checks), no COPY (pglite-socket has none)
    PgSink.layer({
      advisoryLock: !isEmbedded(config),
      copy: !isEmbedded(config),
      lease: config.lease,
      holdsLock: isEmbedded(config)
        // the directory the run opened and locked: beside the config file, not in the working directory
        ? DataDirLock.verify(dataDir(config, environment))
        : undefined
    }),
    checkpointStore(config)
  ).pipe(Layer.provideMerge(database(config, environment, connections, Math.max(10, 2 * concurrency + 1))))

/**
 * Everything `Sync` needs: the state layer and the HTTP source. The source's settings are checked first:
 * a malformed proxy variable is a 78 before any database is opened (or found down).
 */
export const layer = (
  config: FerryConfigShape,
  environment: Environment,
  connections = 2,
  concurrency = 1
): Layer.Layer<Sink | CheckpointStore | Source | SqlClient, DatabaseError | LockHeld | ConfigError> =>
  Either.match(Proxy.fromEnv(environment.env), {
    onLeft: (error) => Layer.fail(error),
    onRight: (proxies) => Layer.merge(httpSource(proxies), stateLayer(config, environment, connections, concurrency))
  })
