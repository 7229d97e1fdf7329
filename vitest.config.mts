import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/lab/**", "node_modules/**"],
    // Pulumi keeps runtime state on globalThis and the program module is cached: every test
    // file gets a fresh process (these are vitest 4 defaults; pinned on purpose).
    pool: "forks",
    isolate: true,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // the last lines of a run list the real-binary suites that did not run (test/harness/real.ts)
    reporters: ["default", "./test/harness/real-binaries-reporter.ts"],
  },
});
