/**
 * Reporter (after the default one): the last lines of `npm test` say which real-binary suites
 * (test/harness/real.ts) did not run and why, or that all of them ran. Sets a failing exit code
 * when HAKUBE_REQUIRE_REAL_BINARIES=1 and any of them did not run (the suites also fail then).
 */
import * as path from "node:path";
import type { Reporter, TestModule } from "vitest/node";
import { REAL_META_KEY } from "./real";

export default class RealBinariesReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const ran: string[] = [];
    const missed: { where: string; why: string; tests: number }[] = [];
    for (const m of modules) {
      for (const s of m.children.allSuites()) {
        const why = (s.meta() as Record<string, unknown>)[REAL_META_KEY];
        if (typeof why !== "string") continue;
        const where = `${path.relative(process.cwd(), m.moduleId)} > ${s.name.replace(/ \(skipped: .*\)$/, "")}`;
        if (why === "") ran.push(where);
        else missed.push({ where, why, tests: [...s.children.allTests()].length });
      }
    }
    if (!ran.length && !missed.length) return;
    const out: string[] = [""];
    if (!missed.length) {
      out.push(`real-binary tests: all ${ran.length} suite${ran.length === 1 ? "" : "s"} ran (none skipped)`);
    } else {
      const n = missed.reduce((a, x) => a + x.tests, 0);
      const required = process.env.HAKUBE_REQUIRE_REAL_BINARIES === "1";
      out.push(`real-binary tests NOT RUN: ${missed.length} of ${missed.length + ran.length} suites (${n} tests)${required ? " — FAILED (HAKUBE_REQUIRE_REAL_BINARIES=1)" : ""}:`);
      for (const x of missed) out.push(`  - ${x.where}: ${x.why}`);
      out.push(required ? "Install what is missing (as root, `npm run test:all` installs it)." : "This run did not test them. `sudo npm run test:all` installs what they need and fails if any still cannot run.");
      if (required) process.exitCode = 1;
    }
    process.stdout.write(out.join("\n") + "\n");
  }
}
