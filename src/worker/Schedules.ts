/**
 * Streams' `schedule:` as pg-boss schedules. pg-boss keeps one schedule per queue for the whole
 * cluster and its cron pass sends each occurrence once, whichever workers run: every worker upserts
 * its config's schedules at start (the same config on every worker writes the same rows), and removes
 * those of its streams that no longer have one. Cron runs in UTC.
 */
import { Effect } from "effect"
import { ConfigError } from "../domain/Errors.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import { type Boss, failure } from "./Boss.js"
import { type JobData, queueName } from "./Queues.js"

interface Applied {
  readonly scheduled: ReadonlyArray<string>
  readonly unscheduled: ReadonlyArray<string>
}

export const apply = (boss: Boss, streams: ReadonlyArray<StreamSpec>, schedules: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const scheduled: Array<string> = []
    const unscheduled: Array<string> = []
    for (const stream of streams) {
      const queue = queueName(stream)
      const cron = schedules.get(stream.name)
      if (cron !== undefined) {
        const data: JobData = { stream: stream.name }
        yield* Effect.tryPromise({
          try: () => boss.schedule(queue, cron, data, { tz: "UTC" }),
          // the config's check (config/Cron.ts) let through something pg-boss's parser refuses
          catch: (cause) =>
            new ConfigError({
              path: `streams.${stream.name}.schedule`,
              reason: `pg-boss refused the schedule: ${cause instanceof Error ? cause.message : String(cause)}`
            })
        })
        scheduled.push(stream.name)
      } else {
        const existing = yield* Effect.tryPromise({
          try: () => boss.getSchedule(queue),
          catch: failure(`could not read the schedule of stream "${stream.name}"`)
        })
        if (existing === null) continue
        yield* Effect.tryPromise({ try: () => boss.unschedule(queue), catch: failure(`could not remove the schedule of stream "${stream.name}"`) })
        unscheduled.push(stream.name)
      }
    }
    return { scheduled, unscheduled } satisfies Applied
  })
