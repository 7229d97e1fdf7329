/**
 * The guard of test/harness/real.ts + real-binaries-reporter.ts, proven on a fixture project run
 * by vitest itself: with the binary hidden from PATH a real-binary suite is skipped and the last
 * lines say so; with HAKUBE_REQUIRE_REAL_BINARIES=1 (test/all.sh, CI) the run fails instead.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const ROOT = path.resolve(__dirname, "..");
const CONFIG = path.join(__dirname, "fixtures/real-binaries/vitest.config.mts");
let bin: string;

/** vitest on the fixture with PATH = only node and bash (+ a fake haproxy when asked). */
function vitest(o: { require: boolean; haproxy: boolean }) {
  fs.rmSync(path.join(bin, "haproxy"), { force: true });
  if (o.haproxy) fs.writeFileSync(path.join(bin, "haproxy"), '#!/bin/sh\necho "HAProxy version 9.9 (fake)"\n', { mode: 0o755 });
  const env: Record<string, string> = { PATH: bin, HOME: os.tmpdir(), CI: "1", NO_COLOR: "1" };
  if (o.require) env.HAKUBE_REQUIRE_REAL_BINARIES = "1";
  const r = spawnSync(process.execPath, [path.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--config", CONFIG], { cwd: ROOT, env, encoding: "utf8", timeout: 120_000 });
  const strip = (t: string) => t.replace(/\x1b\[[0-9;]*m/g, "");
  // the last lines of stdout (vitest prints failure details on stderr)
  return { code: r.status, out: strip(r.stdout + r.stderr), last: strip(r.stdout).trimEnd().split("\n").slice(-6).join("\n") };
}

beforeAll(() => {
  bin = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-real-guard-"));
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  const bash = spawnSync("bash", ["-c", "command -v bash"], { encoding: "utf8" }).stdout.trim();
  fs.symlinkSync(bash, path.join(bin, "bash"));
});
afterAll(() => fs.rmSync(bin, { recursive: true, force: true }));

describe("real-binary guard", () => {
  test("binary hidden: skipped, exit 0, and the last lines name the suite and the reason", () => {
    const r = vitest({ require: false, haproxy: false });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/1 skipped/);
    expect(r.last).toMatch(/^real-binary tests NOT RUN: 1 of 1 suites \(1 tests\):$/m);
    expect(r.last).toMatch(/^ {2}- test\/fixtures\/real-binaries\/guard\.fixture\.ts > a suite that needs haproxy: haproxy not installed$/m);
  });

  test("binary hidden, HAKUBE_REQUIRE_REAL_BINARIES=1: the run fails, saying why", () => {
    const r = vitest({ require: true, haproxy: false });
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/cannot run: haproxy not installed/);
    expect(r.out).not.toMatch(/1 skipped/);
    expect(r.last).toMatch(/real-binary tests NOT RUN: 1 of 1 suites \(1 tests\) — FAILED \(HAKUBE_REQUIRE_REAL_BINARIES=1\):/);
  });

  test("binary present, HAKUBE_REQUIRE_REAL_BINARIES=1: the suite runs and passes", () => {
    const r = vitest({ require: true, haproxy: true });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/1 passed/);
    expect(r.last).toMatch(/^real-binary tests: all 1 suite ran \(none skipped\)$/m);
  });

  test(".ci/run → npm run test:all → test/all.sh requires the real-binary tests before it runs the fast suite", () => {
    expect(fs.readFileSync(path.join(ROOT, ".ci/run"), "utf8")).toMatch(/^exec npm run test:all$/m);
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts["test:all"]).toBe("bash test/all.sh");
    const all = fs.readFileSync(path.join(ROOT, "test/all.sh"), "utf8");
    const required = all.search(/^export HAKUBE_REQUIRE_REAL_BINARIES=1$/m);
    expect(required).toBeGreaterThan(0);
    expect(all.indexOf("\nnpm test\n")).toBeGreaterThan(required);
  });
});
