/**
 * What a stream's run means for its job. The exit codes are `ferry run`'s: 0 completes the job; a
 * temporary failure (75: the stream's lock is held, a rate-limit budget ran out, a lock wait timed out;
 * 74: the database) fails it and pg-boss retries it later, with backoff; a run interrupted by a stop
 * hands the job back (a retry, after a second); anything else (78 config, 65 invalid records, 69 the
 * source, 70 a defect) would fail the same way at once: the job fails for good, and the stream's next
 * schedule or enqueue starts anew.
 */
import { ExitCode } from "../domain/Errors.js"

export type Outcome = "completed" | "retry" | "handed_back" | "failed"

export const outcomeOf = (exitCode: number, interrupted: boolean): Outcome => {
  if (interrupted) return "handed_back"
  if (exitCode === ExitCode.Ok) return "completed"
  if (exitCode === ExitCode.TempFail || exitCode === ExitCode.IoErr) return "retry"
  return "failed"
}
