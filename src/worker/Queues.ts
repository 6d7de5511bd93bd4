/**
 * How Ferry uses pg-boss: its schema, one queue per stream and the queue's policy, and the intervals
 * that bound how fast a dead worker's job is taken over. Plain values: nothing here loads pg-boss.
 */
import { createHash } from "node:crypto"
import { type StreamSpec, targetName } from "../domain/StreamSpec.js"

/** pg-boss's own tables live in this schema of the configured database */
export const jobsSchema = "ferry_jobs"

/** What a stream's job carries: the stream's name (the queue says which target). */
export interface JobData {
  readonly stream: string
}

/**
 * The stream's queue: its name and its target table, so that two configs on one database with a
 * stream of the same name but another table never take each other's jobs (the same stream and table
 * is the same stream: its lock would exclude the second run anyway). pg-boss allows letters, digits,
 * `_ . - /` in a name; anything else is replaced and a hash of the whole keeps names apart.
 */
export const queueName = (stream: StreamSpec): string => {
  const raw = `ferry/${targetName(stream.target)}/${stream.name}`
  const clean = raw.replace(/[^\w.\-/]/g, "_")
  return clean === raw ? raw : `${clean}-${createHash("sha1").update(raw).digest("hex").slice(0, 8)}`
}

/** A running job proves it is alive this often (pg-boss's minimum); silent longer, the monitor fails it. */
export const heartbeatSeconds = 10

/**
 * The queue's policy: `stately` holds at most one queued (created), one waiting to retry and one active
 * job: a stream never runs twice at once, and a schedule that fires while its run is queued adds nothing.
 * Retries (a takeover, a job handed back at a graceful stop, a 75) start after 1 s and back off
 * exponentially up to 5 minutes; after 10 the job fails for good and the schedule's next run starts anew.
 */
export const queueOptions = {
  policy: "stately",
  heartbeatSeconds,
  retryLimit: 10,
  retryDelay: 1,
  retryBackoff: true,
  retryDelayMax: 300,
  // pg-boss fails a job active longer than this whatever its heartbeats (24 h is its maximum)
  expireInSeconds: 24 * 3600
} as const

/**
 * pg-boss's maintenance: the pass that fails jobs whose heartbeat stopped runs every 5 s (default 60),
 * so a takeover takes heartbeatSeconds + up to 5 s + the retry delay + one poll (docs/DESIGN-NOTES.md).
 */
export const maintenanceOptions = {
  superviseIntervalSeconds: 5,
  monitorIntervalSeconds: 5
} as const

/** how often an idle worker looks for jobs in its queues */
export const pollIntervalMillis = 1000
