/**
 * docs/previews/: what a reviewer would see for three realistic pull requests on the production
 * layout (Pulumi.prod.example.yaml), computed from the program's inputs under mocks (no engine
 * runs here; test/harness/previews.ts). Checks that only the expected resources change, that what
 * changes is readable script text (never a secret input), and that no secret value appears.
 * `npm run previews` rewrites the files; otherwise the committed files must list the same changes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { secretValues } from "./harness/fixtures";
import { compare, computePreview, SECRET_PROPERTIES, programCopyWith, type Preview, type PreviewInput } from "./harness/previews";
import { readStackFile, ROOT, runProgram, TEST_SSH_KEY, type RunResult, type StackConfig } from "./harness/program";

const WRITE = process.env.HAKUBE_WRITE_PREVIEWS === "1";
const base = (): StackConfig => ({ ...readStackFile("Pulumi.prod.example.yaml"), sshPrivateKey: TEST_SSH_KEY });
const W3 = { name: "w3", address: "192.0.2.43", roles: ["worker"], hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILaEqOF1kmjVs7nU/OI9Rt1NDADkHek4qnaQbhK/dCs4", labels: { "topology.kubernetes.io/zone": "c" } };

type Expected = { op: "create" | "update" | "delete"; names: string[]; properties?: string[] }[];
const CHANGES: (PreviewInput & { expected: Expected })[] = [
  {
    slug: "add-worker",
    title: "add a worker",
    change: "The pull request appends a worker `w3` to `hakube:hosts` in `Pulumi.prod.yaml`.",
    sourceDiff: `   - { name: w2, address: 192.0.2.42, roles: [worker], hostKey: "ssh-ed25519 AAAA…", labels: { topology.kubernetes.io/zone: b } }
+    - { name: w3, address: 192.0.2.43, roles: [worker], hostKey: "ssh-ed25519 AAAA…", labels: { topology.kubernetes.io/zone: c } }`,
    base: base(),
    changed: { ...base(), "hakube:hosts": [...(base()["hakube:hosts"] as object[]), W3] },
    expected: [
      { op: "create", names: ["hosts-preflight-w3", "workers-drain-w3", "workers-join-w3", "workers-prepare-w3", "workers-token-w3"] },
      { op: "update", names: ["lb-proxy-lb1", "lb-proxy-lb2"], properties: ["create"] },
    ],
  },
  {
    slug: "haproxy-timeout",
    title: "change an HAProxy timeout",
    change: "The pull request raises the load balancers' idle timeout for proxied connections (`timeout client`/`timeout server`, and `hard-stop-after` on reload) from 1 h to 2 h, in `components/loadbalancer/render.ts`.",
    sourceDiff: `-export const IDLE_TIMEOUT = "1h";
+export const IDLE_TIMEOUT = "2h";`,
    base: base(),
    module: "", // set in beforeAll
    expected: [{ op: "update", names: ["lb-proxy-lb1", "lb-proxy-lb2"], properties: ["create"] }],
  },
  {
    slug: "etcd-patch",
    title: "bump the etcd patch version",
    change: "The pull request bumps `hakube:etcd.version` from 3.6.16 to 3.6.17 in `Pulumi.prod.yaml`. The members restart one at a time (each waits for the one before), and the health gate checks the new stamps.",
    sourceDiff: `   hakube:etcd:
-    version: 3.6.16
+    version: 3.6.17`,
    base: base(),
    changed: { ...base(), "hakube:etcd": { ...(base()["hakube:etcd"] as object), version: "3.6.17" } },
    expected: [
      {
        op: "update",
        names: ["etcd-health-etcd1", ...[1, 2, 3, 4, 5].flatMap((i) => [`etcd-install-etcd${i}`, `etcd-member-etcd${i}`])].sort(),
        properties: ["create"],
      },
    ],
  },
];

/** The base evaluation, shared by the three changes (each compares with it). */
let baseRun: Promise<RunResult> | undefined;
const baseline = () => (baseRun ??= runProgram(base()));

/** The fenced code blocks of a markdown text. */
const codeBlocks = (md: string) => [...md.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]);
/** The table rows (op, resource, type, changed inputs). */
const tableRows = (md: string) => md.split("\n").filter((l) => /^\| [+~-] (create|update|delete) \|/.test(l));

for (const c of CHANGES) {
  describe(`preview: ${c.title}`, () => {
    let p: Preview;
    beforeAll(async () => {
      const input = c.slug === "haproxy-timeout" ? { ...c, module: programCopyWith("components/loadbalancer/render.ts", (t) => t.replace('export const IDLE_TIMEOUT = "1h";', 'export const IDLE_TIMEOUT = "2h";')) } : c;
      p = await computePreview(input, await baseline());
      if (WRITE) {
        fs.mkdirSync(path.join(ROOT, "docs/previews"), { recursive: true });
        fs.writeFileSync(path.join(ROOT, "docs/previews", `${c.slug}.md`), p.markdown + "\n");
      }
    });

    it("changes only the expected resources, in the expected way", () => {
      // only commands: no certificate, key, random value or component changes
      expect(p.changes.filter((x) => x.type !== "command:remote:Command")).toEqual([]);
      for (const op of ["create", "update", "delete"] as const) {
        const want = c.expected.find((e) => e.op === op);
        const got = p.changes.filter((x) => x.op === op);
        expect(got.map((x) => x.name).sort(), op).toEqual(want?.names ?? []);
        if (want?.properties) for (const x of got) expect(x.properties, x.name).toEqual(want.properties);
      }
    });

    it("what changes is readable: no secret input changes on an update, every diff is script text", () => {
      for (const x of p.changes.filter((y) => y.op === "update")) expect(x.properties.filter((q) => SECRET_PROPERTIES.includes(q)), x.name).toEqual([]);
      const blocks = codeBlocks(p.markdown);
      const all = c.expected.flatMap((e) => e.names);
      expect(blocks.length).toBeGreaterThanOrEqual(all.length);
      for (const b of blocks) expect(b).not.toContain("[secret]");
      const diffs = blocks.filter((b) => b.startsWith("--- a/"));
      expect(diffs.length).toBe(c.expected.find((e) => e.op === "update")?.names.length ?? 0);
      for (const d of diffs) expect(d).toMatch(/^[-+](?![-+])/m);
    });

    it("shows no secret value", () => {
      const secrets = [...secretValues(p.before.harness), ...secretValues(p.after.harness)];
      expect(secrets.length).toBeGreaterThan(5);
      for (const s of secrets) expect(p.markdown.includes(s)).toBe(false);
    });

    it(`docs/previews/${c.slug}.md lists the same changes and diffs, and says how it was made`, () => {
      const doc = fs.readFileSync(path.join(ROOT, "docs/previews", `${c.slug}.md`), "utf8");
      expect(tableRows(doc)).toEqual(tableRows(p.markdown));
      // the diffs too, line for line: a script change that leaves the plan alone must not leave the page stale
      // (content stamps hash each run's fresh certificates: compared as <sha256>)
      const diffs = (md: string) => codeBlocks(md).filter((b) => b.startsWith("--- a/")).map((b) => b.replace(/\b[0-9a-f]{64}\b/g, "<sha256>"));
      expect(diffs(doc), "docs/previews is stale: npm run previews").toEqual(diffs(p.markdown));
      expect(doc).toContain("not captured from `pulumi preview`");
      expect(doc.split("\n").find((l) => l.startsWith("**Plan:"))).toBe(p.markdown.split("\n").find((l) => l.startsWith("**Plan:")));
    });
  });
}

describe("preview: the HAProxy change's diff", () => {
  it("is the two timeout lines and hard-stop-after, nothing else", () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/previews/haproxy-timeout.md"), "utf8");
    const changed = codeBlocks(doc).filter((b) => b.startsWith("--- a/")).flatMap((d) => d.split("\n").filter((l) => /^[-+](?![-+])/.test(l)));
    expect([...new Set(changed.map((l) => l.trim()))].sort()).toEqual(["+hard-stop-after 2h", "+timeout client 2h", "+timeout server 2h", "-hard-stop-after 1h", "-timeout client 1h", "-timeout server 1h"].map((l) => l.replace(/^([-+])/, "$1    ").trim()).sort());
  });
});

describe("README shows one preview", () => {
  it("the README's preview is the HAProxy change's lb1 diff, as in docs/previews, and says how it was made", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const doc = fs.readFileSync(path.join(ROOT, "docs/previews/haproxy-timeout.md"), "utf8");
    const lb1 = codeBlocks(doc).find((b) => b.startsWith("--- a/lb-proxy-lb1.create"))!;
    expect(lb1).toContain("+    timeout client 2h");
    expect(codeBlocks(readme)).toContain(lb1);
    expect(readme).toContain("not captured from\n`pulumi preview`");
  });
});

describe("rotating the SSH key (docs/operations.md)", () => {
  it("changes only every command's secret connection: no script, no other resource", async () => {
    const before = await baseline();
    const rotated = `${TEST_SSH_KEY.trim()}-ROTATED\n`;
    const after = await runProgram({ ...base(), sshPrivateKey: rotated }, { state: before.harness.state });
    if (after.error) throw after.error;
    const changes = compare(before, after);
    expect(changes.length).toBe(before.harness.commands().length);
    for (const c of changes) {
      expect(c.type, c.name).toBe("command:remote:Command");
      expect(c.op, c.name).toBe("update");
      expect(c.properties, c.name).toEqual(["connection"]);
      expect(c.after!.inputs.connection.privateKey).toBe(rotated);
    }
  });
});
