/** Bundles the CLI once before the tests, so child-process tests run the code under test. */
import { execFileSync } from "node:child_process"

export default function setup() {
  execFileSync(process.execPath, ["scripts/build.mjs", "--bundle-only"], { stdio: "inherit" })
}
