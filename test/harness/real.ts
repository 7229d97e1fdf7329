/**
 * Suites that need real binaries (etcd, haproxy, nginx, keepalived) or root (namespaces, the etcd
 * user). Where the machine lacks them the suite is skipped *with the reason*, and the reporter
 * (test/harness/real-binaries-reporter.ts) lists every skipped one in the last lines of the run.
 * With HAKUBE_REQUIRE_REAL_BINARIES=1 (test/all.sh, so `.ci/run`) such a suite fails instead:
 * a test command never exits 0 having skipped what it was meant to test.
 */
import { describe, test } from "vitest";

export const REQUIRE_REAL_BINARIES = process.env.HAKUBE_REQUIRE_REAL_BINARIES === "1";

/** The suite meta the reporter reads: `why` it could not run, or "" when it ran. */
export const REAL_META_KEY = "hakubeRealBinaries";

/** describe() for a real-binary suite; `why` (undefined: everything is there) says what is missing. */
export function describeReal(name: string, why: string | undefined, fn: () => void): void {
  const meta = { [REAL_META_KEY]: why ?? "" } as Record<string, string>;
  if (why === undefined) {
    describe(name, { meta }, fn);
  } else if (REQUIRE_REAL_BINARIES) {
    describe(name, { meta }, () => {
      test(`cannot run: ${why}`, () => {
        throw new Error(
          `${name}: cannot run: ${why}. HAKUBE_REQUIRE_REAL_BINARIES=1 (test/all.sh, CI) makes this a failure, not a skip: ` +
            "install what is missing (as root, `npm run test:all` installs the packages) or unset it to allow skipping.",
        );
      });
    });
  } else {
    describe.skip(`${name} (skipped: ${why})`, { meta }, fn);
  }
}
