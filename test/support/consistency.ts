/**
 * The checks after a kill and after the final run (what "consistent" and "converged" mean), shared by
 * test/crash.test.ts, test/failpoints.test.ts and scripts/chaos.mjs. They live in
 * scripts/truth-check.mjs (plain JS, so that the chaos script runs under bare node); see there.
 */
export {
  checkpointViolations,
  deleteViolations,
  diff,
  msOf,
  readCheckpoint,
  readTarget,
  replaceViolations,
  runRowViolations
} from "../../scripts/truth-check.mjs"
export type { Query, TargetRow } from "../../scripts/truth-check.mjs"
