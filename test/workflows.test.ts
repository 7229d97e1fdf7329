/**
 * .github/workflows: the pull-request preview (official Pulumi action, a comment per stack, one
 * job per stack) and the `up` on main, parsed as YAML and checked job by job.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { ROOT } from "./harness/program";

type Step = { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> };
type Job = { "runs-on": string; strategy?: { matrix: { stack: string[] }; "max-parallel"?: number }; steps: Step[]; environment?: string; concurrency?: { group: string; "cancel-in-progress": boolean } };
const load = (f: string) => parse(fs.readFileSync(path.join(ROOT, ".github/workflows", f), "utf8")) as { on: Record<string, any>; permissions: Record<string, string>; jobs: Record<string, Job> };

/** The checks both workflows share: node with the npm cache, npm ci before Pulumi, secrets from the secrets context only. */
function checkCommon(job: Job, command: string) {
  const names = job.steps.map((s) => s.uses?.replace(/@.*/, "") ?? s.run);
  const pulumiAt = names.indexOf("pulumi/actions");
  expect(pulumiAt, "uses pulumi/actions").toBeGreaterThan(0);
  expect(names.indexOf("actions/checkout")).toBe(0);
  const node = job.steps.find((s) => s.uses?.startsWith("actions/setup-node@"))!;
  expect(node.with).toMatchObject({ cache: "npm" });
  expect(String(node.with!["node-version"])).toMatch(/^(20|22)/);
  expect(names.indexOf("npm ci"), "npm ci before the Pulumi step").toBeGreaterThan(names.indexOf("actions/setup-node"));
  expect(names.indexOf("npm ci")).toBeLessThan(pulumiAt);
  const pulumi = job.steps[pulumiAt];
  expect(pulumi.uses).toMatch(/^pulumi\/actions@v[6-9]$/);
  expect(pulumi.with!.command).toBe(command);
  // one job per stack: the stack comes from the matrix
  expect(String(pulumi.with!["stack-name"])).toMatch(/\$\{\{ matrix\.stack \}\}$/);
  expect(job.strategy!.matrix.stack.length).toBeGreaterThanOrEqual(2);
  expect(pulumi.env!.PULUMI_ACCESS_TOKEN).toBe("${{ secrets.PULUMI_ACCESS_TOKEN }}");
  // no literal secret anywhere in the job: every token/key-looking value is an expression
  for (const s of job.steps) for (const [k, v] of Object.entries({ ...s.env, ...s.with })) if (/token|key|secret|passphrase/i.test(k)) expect(String(v), k).toMatch(/^\$\{\{ secrets\.[A-Z_]+ \}\}$/);
  return pulumi;
}

describe(".github/workflows", () => {
  it("preview.yml: on pull requests, one preview job per stack, diff commented on the pull request", () => {
    const wf = load("preview.yml");
    expect(Object.keys(wf.on)).toEqual(["pull_request"]);
    expect(wf.permissions).toMatchObject({ contents: "read", "pull-requests": "write" });
    expect(Object.keys(wf.jobs)).toEqual(["preview"]);
    const pulumi = checkCommon(wf.jobs.preview, "preview");
    expect(pulumi.with).toMatchObject({ "comment-on-pr": true, diff: true });
    expect(pulumi.with!["github-token"]).toBe("${{ secrets.GITHUB_TOKEN }}");
  });

  it("up.yml: on main, `pulumi up` per stack, one at a time, in the stack's GitHub environment, never cancelled", () => {
    const wf = load("up.yml");
    expect(wf.on.push).toEqual({ branches: ["main"] });
    expect(wf.on.pull_request).toBeUndefined();
    const job = wf.jobs.up;
    checkCommon(job, "up");
    expect(job.strategy!["max-parallel"]).toBe(1);
    expect(job.environment).toBe("${{ matrix.stack }}");
    expect(job.concurrency).toEqual({ group: "up-${{ matrix.stack }}", "cancel-in-progress": false });
    expect(wf.permissions).toEqual({ contents: "read" });
  });

  it("both workflows cover the same stacks", () => {
    expect(load("up.yml").jobs.up.strategy!.matrix.stack).toEqual(load("preview.yml").jobs.preview.strategy!.matrix.stack);
  });
});
