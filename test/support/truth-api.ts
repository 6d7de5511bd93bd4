/**
 * The source whose truth the process-level suites compare the target table against. It lives in
 * scripts/truth-source.mjs (plain JS, so that `npm run chaos` runs it under bare node); see there.
 */
export { prng, startTruthApi, truthStreamYaml } from "../../scripts/truth-source.mjs"
export type { TruthApi, TruthApiOptions, TruthRecord } from "../../scripts/truth-source.mjs"
