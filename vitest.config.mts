import * as os from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/lab/**", "node_modules/**"],
    // Pulumi keeps runtime state on globalThis and the program module is cached: every test
    // file gets a fresh process (these are vitest 4 defaults; pinned on purpose).
    pool: "forks",
    isolate: true,
    // vitest's default is one worker less than the cores: a single worker on the 2-core CI
    // machines. Most files wait on real binaries (etcd, HAProxy, keepalived) or the SDK's RPCs,
    // so one worker per core nearly halves the wall time (measured: 162 s → 99 s on 2 cores).
    maxWorkers: Math.max(2, os.availableParallelism()),
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // the last lines of a run list the real-binary suites that did not run (test/harness/real.ts)
    reporters: ["default", "./test/harness/real-binaries-reporter.ts"],
  },
});
