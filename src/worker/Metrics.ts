/**
 * What `/metrics` says: the worker's own job counts (Counters.ts), and per stream of its config the
 * last successful run (from `ferry.runs`, whichever worker ran it) and how far its checkpoint lags
 * behind now (streams with a timestamp cursor). Read at each scrape; a stream never run has no sample.
 * Every per-stream series carries `config`, the config file's path, as `ferry run --metrics-file` writes
 * them: one alert rule and one dashboard for both.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Option } from "effect"
import { CheckpointStore, keyOf } from "../CheckpointStore.js"
import * as Cursor from "../domain/Cursor.js"
import { type StreamSpec, targetName } from "../domain/StreamSpec.js"
import type { Family, Sample } from "../metrics/Prometheus.js"
import type { Counters } from "./Counters.js"

const perStream = (config: string, counts: ReadonlyMap<string, number>): ReadonlyArray<Sample> =>
  [...counts].map(([stream, value]) => ({ labels: { config, stream }, value }))

const lastSuccesses = (config: string, streams: ReadonlyArray<StreamSpec>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const [table] = yield* sql.unsafe<{ present: boolean; sliced: boolean }>(
      `SELECT to_regclass('ferry.runs') IS NOT NULL AS present, EXISTS (SELECT FROM pg_attribute
         WHERE attrelid = to_regclass('ferry.runs') AND attname = 'slice' AND NOT attisdropped) AS sliced`
    )
    if (!table?.present) return []
    // a slice (`--from/--to`) read a window, not the stream up to now: as for `ferry check --fresh`
    const whole = table.sliced ? "AND slice IS NOT TRUE" : ""
    const rows = yield* sql.unsafe<{ stream: string; target: string | null; last: string | number }>(
      `SELECT stream, target, extract(epoch FROM max(finished_at)) AS last FROM ferry.runs
        WHERE status = 'succeeded' ${whole} AND stream = ANY($1) GROUP BY stream, target`,
      [streams.map((s) => s.name)]
    )
    return streams.flatMap((stream) => {
      const row = rows.find((r) => r.stream === stream.name && r.target === targetName(stream.target))
      return row === undefined || row.last === null ? [] : [{ labels: { config, stream: stream.name }, value: Number(row.last) }]
    })
  })

const checkpointLags = (config: string, streams: ReadonlyArray<StreamSpec>, now: number) =>
  Effect.gen(function*() {
    const store = yield* CheckpointStore
    const timed = streams.filter((s) => s.parent === undefined && Cursor.typeOf(s) === "timestamp")
    const samples = yield* Effect.forEach(timed, (stream) =>
      Effect.map(store.load(keyOf(stream)), (stored) => {
        const at = Option.isSome(stored) ? Cursor.instantOf(stored.value.cursor) : NaN
        return Number.isNaN(at) ? [] : [{ labels: { config, stream: stream.name }, value: Math.max(0, (now - at) / 1000) }]
      }))
    return samples.flat()
  })

/** `config`: the config file's absolute path (FerryConfigShape's `file`) */
export const families = (counters: Counters, config: string, streams: ReadonlyArray<StreamSpec>) =>
  Effect.gen(function*() {
    const now = Date.now()
    const [successes, lags] = yield* Effect.all([lastSuccesses(config, streams), checkpointLags(config, streams, now)])
    return [
      { name: "ferry_worker_jobs_running", help: "Jobs this worker is running now.", type: "gauge", samples: [{ value: counters.running }] },
      {
        name: "ferry_worker_jobs_completed_total",
        help: "Jobs this worker completed, by stream.",
        type: "counter",
        samples: perStream(config, counters.completed)
      },
      {
        name: "ferry_worker_jobs_failed_total",
        help: "Jobs this worker failed (to be retried or for good), by stream; jobs handed back at a stop are not counted.",
        type: "counter",
        samples: perStream(config, counters.failed)
      },
      {
        name: "ferry_last_success_timestamp_seconds",
        help: "When the stream's last successful run ended (any worker or ferry run), Unix time.",
        type: "gauge",
        samples: successes
      },
      {
        name: "ferry_checkpoint_lag_seconds",
        help: "Now minus the stream's checkpoint, for streams with a timestamp cursor.",
        type: "gauge",
        samples: lags
      }
    ] satisfies ReadonlyArray<Family>
  })
