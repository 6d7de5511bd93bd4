import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  // examples import "ferry" as an application would; tests run them against the sources
  resolve: {
    alias: [
      { find: /^ferry$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
      { find: /^ferry\/testing$/, replacement: fileURLToPath(new URL("./src/testing/index.ts", import.meta.url)) }
    ]
  },
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start servers and child processes; two cores.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } }
  }
})
