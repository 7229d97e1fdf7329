/**
 * `npm run bench [-- --sizes 3,30,100,300] [--blast-size 30] [--node-args "…"] [--docs]`
 * `npm run bench -- --docs-from reports/bench.json`    (rewrite docs/benchmarks.md from a run)
 * `npm run bench -- --compare BEFORE.json,AFTER.json`  (before → after table into docs/benchmarks.md)
 *
 * Prints (and writes to reports/bench.json; with --docs also into docs/benchmarks.md):
 * 1. Evaluation cost of `index.ts` on generated topologies (bench/topology.ts) under the
 *    harness's record-only mocks, each in its own process: evaluation and process wall time, peak
 *    RSS, resources, commands, per host; next to the SDK's floor (the same number of bare
 *    resources under the same mocks, bench/floor.ts).
 * 2. Determinism: a second evaluation of each topology in a fresh process, handed the first one's
 *    provider state → resources whose inputs differ (must be 0).
 * 3. Blast radius: single-knob changes (bench/blast.ts) → resources whose inputs change, by kind,
 *    checked against what each knob may touch.
 * 4. As root with the lab's toolchain (unless --no-lab): the lab cluster's bring-up with 2 and 6
 *    workers (test/lab/bench.ts: wall time, critical path, ratio, growth).
 * 5. What needs the real engine: printed as "not measured" with the reason.
 *
 * Node flags: the children run with the `nodeargs` of Pulumi.yaml's runtime options (what
 * `pulumi up` passes to node), so the figures are the program as the engine would run it.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { parse } from "yaml";
import { KNOBS, checkBlast, type BlastResult } from "./blast";
import { diffInputs, summarizeKinds } from "./measure";
import { benchTopology, rolePlan, SIZES } from "./topology";

const ROOT = path.resolve(__dirname, "..");
const CHILD = path.join(__dirname, "child.ts");

/** `nodeargs` from Pulumi.yaml (runtime.options.nodeargs), split into words. */
export function projectNodeArgs(): string[] {
  const doc = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { runtime?: { options?: { nodeargs?: string } } };
  return (doc.runtime?.options?.nodeargs ?? "").split(/\s+/).filter(Boolean);
}

interface ChildResult {
  [k: string]: unknown;
  evaluationMs: number;
  maxRssKb: number;
  processMs: number;
  wallMs: number;
}

function child(args: string[], nodeArgs: string[]): ChildResult {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...nodeArgs, "--import", "tsx", CHILD, ...args], { cwd: ROOT, encoding: "utf8", maxBuffer: 256 << 20 });
  const wallMs = Math.round(performance.now() - t0);
  if (r.status !== 0) throw new Error(`bench child ${args.join(" ")} failed (exit ${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split("\n").pop()!;
  return { ...(JSON.parse(line) as ChildResult), wallMs };
}

const s = (ms: number) => (ms / 1000).toFixed(1);
const mb = (kb: number) => String(Math.round(kb / 1024));

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface Evaluation {
  hosts: number;
  resources: number;
  commands: number;
  evaluationMs: number;
  cpuMs: number;
  wallMs: number;
  maxRssKb: number;
  maxCommandsPerHost: number;
  commandsPerHostByRole: Record<string, number>;
  floor: { evaluationMs: number; cpuMs: number; maxRssKb: number };
}

export interface Report {
  date: string;
  machine: string;
  loadStart: string;
  loadEnd: string;
  nodeArgs: string[];
  evaluations: Evaluation[];
  determinism: { hosts: number; resources: number; differing: number; added: number; removed: number; examples: string[] }[];
  blastSize: number;
  blastResources: number;
  blast: (BlastResult & { what: string; allowed: string; kinds: string })[];
  /** the lab cluster's bring-up (test/lab/bench.ts, as root with the lab's toolchain), one entry per worker count */
  bringUp?: { date: string; load: string; runs: BringUp[] };
}

interface BringUp {
  workers: number;
  labUpMs: number;
  deployWallMs: number;
  executed: number;
  criticalPathMs: number;
  ratio: number;
  criticalPath: string[];
  commandsPerHost: Record<string, number>;
  /** CPU during the deploy: this machine busy (ms), its floor (busy / cores), busy share of the wall time */
  cpu: { cores: number; machineBusyMs: number; floorMs: number; busyFraction: number; hostsMs: number; perRoleMs: Record<string, number> };
}

/** As root with the lab's toolchain built: `tsx test/lab/bench.ts --workers 2,6` (fresh lab hosts per count). */
function bringUp(): Report["bringUp"] | string {
  if (process.argv.includes("--no-lab")) return "not measured: --no-lab";
  if (process.getuid?.() !== 0) return "not measured: the lab needs root (sudo npm run bench)";
  const tc = spawnSync("bash", [path.join(ROOT, "test/lab/toolchain/build.sh"), "--check"]);
  if (tc.status !== 0) return "not measured: the lab's toolchain is not built (sudo npm run lab -- toolchain)";
  const load = os.loadavg().map((x) => x.toFixed(2)).join(", ");
  const r = spawnSync(path.join(ROOT, "node_modules/.bin/tsx"), [path.join(ROOT, "test/lab/bench.ts"), "--workers", "2,6"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error("bench: the lab bring-up (test/lab/bench.ts) failed");
  const j = JSON.parse(fs.readFileSync(path.join(ROOT, "reports", "bench-lab.json"), "utf8"));
  return { date: j.date, load, runs: j.lab as BringUp[] };
}

function bringUpTable(b: Report["bringUp"]): string {
  if (!b) return "";
  const rows = b.runs.map((x) => [
    x.workers,
    s(x.labUpMs),
    s(x.deployWallMs),
    x.executed,
    s(x.criticalPathMs),
    x.ratio,
    Math.max(...Object.values(x.commandsPerHost)),
    `${s(x.cpu.machineBusyMs)} (${s(x.cpu.floorMs)})`,
    `${Math.round(x.cpu.busyFraction * 100)} %`,
    x.criticalPath.map((c) => c.split(" ")[0]).join(" → "),
  ]);
  const [a, z] = [b.runs[0], b.runs[b.runs.length - 1]];
  return [
    table(["workers", "lab up s (fresh hosts)", "deploy wall s", "commands run", "critical path s", "wall / critical", "max commands/host", "CPU s (floor s: CPU / cores)", "machine busy", "critical path"], rows),
    "",
    `Growth: deploy wall × ${(z.deployWallMs / a.deployWallMs).toFixed(2)} from ${a.workers} to ${z.workers} workers (goal ≤ 1.2); CPU used × ${(z.cpu.machineBusyMs / a.cpu.machineBusyMs).toFixed(2)}. Load average at the start: ${b.load}.`,
  ].join("\n");
}

const roleText = (n: number) => {
  const r = rolePlan(n);
  return r.shared ? `${n} × cp+etcd+worker (${r.lbs} also LB)` : `${r.lbs} LB, ${r.etcd} etcd, ${r.cps} CP, ${r.workers} workers`;
};

export function evaluationTable(evals: Evaluation[]): string {
  return table(
    ["hosts", "roles", "resources", "commands", "resources/host", "commands/host (max; by role)", "evaluation s (wall)", "CPU s", "process s", "peak RSS MB", "SDK floor: wall s / CPU s / RSS MB", "ours: wall s / CPU s"],
    evals.map((e) => [
      e.hosts,
      roleText(e.hosts),
      e.resources,
      e.commands,
      (e.resources / e.hosts).toFixed(1),
      `${e.maxCommandsPerHost}; ${Object.entries(e.commandsPerHostByRole).map(([r, c]) => `${r} ${c}`).join(", ")}`,
      s(e.evaluationMs),
      s(e.cpuMs),
      s(e.wallMs),
      mb(e.maxRssKb),
      `${s(e.floor.evaluationMs)} / ${s(e.floor.cpuMs)} / ${mb(e.floor.maxRssKb)}`,
      `${s(Math.max(0, e.evaluationMs - e.floor.evaluationMs))} / ${s(Math.max(0, e.cpuMs - e.floor.cpuMs))}`,
    ]),
  );
}

const NOT_MEASURED: [string, string][] = [
  ["`pulumi preview` time for the same topologies (real engine)", "not measured: the real Pulumi engine cannot run here (provider plugins are not served by the Go module proxy)"],
  ["bring-up wall time, critical path and their ratio on the lab cluster", "measured by `sudo npm run bench` (root, lab toolchain built); not in this run"],
  ["wall time growth from 2 to 6 workers", "measured by `sudo npm run bench` (root, lab toolchain built); not in this run"],
];

/** Every table, as markdown sections (`##` for the terminal, `###` inside docs/benchmarks.md). */
export function renderReport(r: Report, level = "##"): string {
  const det = table(
    ["hosts", "resources", "inputs differing", "added", "removed"],
    r.determinism.map((d) => [d.hosts, d.resources, d.differing, d.added, d.removed]),
  );
  const examples = r.determinism.filter((d) => d.examples.length).map((d) => `${d.hosts} hosts differ in: ${d.examples.join(", ")}`);
  const blast = table(
    ["change", "inputs changed", "added", "removed", "what (changed + added)", "may touch", "outside that"],
    r.blast.map((b) => [b.what, b.changed, b.added, b.removed, b.kinds, b.allowed, b.violations.length ? b.violations.join(", ") : "none"]),
  );
  return [
    `${level} Evaluation cost (index.ts under record-only mocks, one process each)`,
    "",
    evaluationTable(r.evaluations),
    "",
    `${level} Determinism (second evaluation in a fresh process, same provider state)`,
    "",
    det,
    ...(examples.length ? ["", ...examples] : []),
    "",
    `${level} Blast radius (${r.blastSize} hosts: ${roleText(r.blastSize)}; of ${r.blastResources} resources)`,
    "",
    blast,
    "",
    ...(r.bringUp ? [`${level} Bring-up of the lab cluster (every command run over SSH; realizing harness)`, "", bringUpTable(r.bringUp), ""] : []),
    `${level} Not measured`,
    "",
    table(["figure", "status"], r.bringUp ? NOT_MEASURED.slice(0, 1) : NOT_MEASURED),
    "",
  ].join("\n");
}

const BEGIN = "<!-- bench:begin -->";
const END = "<!-- bench:end -->";

/** Replace the figures section of docs/benchmarks.md (between the bench markers). */
export function writeDocs(r: Report): void {
  const file = path.join(ROOT, "docs", "benchmarks.md");
  const text = fs.readFileSync(file, "utf8");
  const i = text.indexOf(BEGIN);
  const j = text.indexOf(END);
  if (i < 0 || j < 0) throw new Error(`${file}: no ${BEGIN} … ${END} section`);
  const head = `Measured ${r.date.slice(0, 16).replace("T", " ")} UTC on ${r.machine}; load average (1, 5, 15 min) ${r.loadStart} at the start, ${r.loadEnd} at the end; node flags: ${r.nodeArgs.join(" ") || "(none)"}.`;
  fs.writeFileSync(file, `${text.slice(0, i + BEGIN.length)}\n${head}\n\n${renderReport(r, "###")}${text.slice(j)}`);
  console.log(`updated ${file}`);
}

/**
 * Before → after for docs/benchmarks.md (between the compare markers): two reports, e.g. the
 * bench run on main and on this branch back to back. CPU seconds are the figure to compare on a
 * busy machine.
 */
export function compareTable(before: Report, after: Report): string {
  const by = (r: Report) => new Map(r.evaluations.map((e) => [e.hosts, e]));
  const a = by(before);
  const b = by(after);
  const hosts = [...b.keys()].filter((h) => a.has(h));
  const worker = (e: Evaluation) => e.commandsPerHostByRole.worker ?? e.maxCommandsPerHost;
  return table(
    ["hosts", "resources", "commands", "commands/worker (max/host)", "evaluation CPU s", "evaluation wall s", "peak RSS MB", "ours above the floor, CPU s"],
    hosts.map((h) => {
      const x = a.get(h)!;
      const y = b.get(h)!;
      const arrow = (f: (e: Evaluation) => string | number) => `${f(x)} → ${f(y)}`;
      return [
        h,
        arrow((e) => e.resources),
        arrow((e) => e.commands),
        `${worker(x)} (${x.maxCommandsPerHost}) → ${worker(y)} (${y.maxCommandsPerHost})`,
        arrow((e) => s(e.cpuMs)),
        arrow((e) => s(e.evaluationMs)),
        arrow((e) => mb(e.maxRssKb)),
        arrow((e) => s(Math.max(0, e.cpuMs - e.floor.cpuMs))),
      ];
    }),
  );
}

function writeCompare(before: Report, after: Report): void {
  const file = path.join(ROOT, "docs", "benchmarks.md");
  const text = fs.readFileSync(file, "utf8");
  const [B, E] = ["<!-- compare:begin -->", "<!-- compare:end -->"];
  const i = text.indexOf(B);
  const j = text.indexOf(E);
  if (i < 0 || j < 0) throw new Error(`${file}: no ${B} … ${E} section`);
  const note = `Measured back to back on ${after.machine}: before ${before.date.slice(0, 16).replace("T", " ")} UTC (load ${before.loadStart} → ${before.loadEnd}; node flags ${before.nodeArgs.join(" ") || "none"}), after ${after.date.slice(0, 16).replace("T", " ")} UTC (load ${after.loadStart} → ${after.loadEnd}; node flags ${after.nodeArgs.join(" ") || "none"}).`;
  const body = `${note}\n\n${compareTable(before, after)}\n`;
  console.log(body);
  fs.writeFileSync(file, `${text.slice(0, i + B.length)}\n${body}${text.slice(j)}`);
  console.log(`updated ${file}`);
}

async function main() {
  const cmp = arg("--compare");
  if (cmp) {
    const [before, after] = cmp.split(",").map((f) => JSON.parse(fs.readFileSync(f, "utf8")) as Report);
    writeCompare(before, after);
    return;
  }
  const from = arg("--docs-from");
  if (from) {
    const r = JSON.parse(fs.readFileSync(from, "utf8")) as Report;
    console.log(renderReport(r));
    writeDocs(r);
    return;
  }
  const sizes = (arg("--sizes") ?? SIZES.join(",")).split(",").map(Number);
  const blastSize = Number(arg("--blast-size") ?? 30);
  const nodeArgs = arg("--node-args") !== undefined ? arg("--node-args")!.split(/\s+/).filter(Boolean) : projectNodeArgs();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-bench-"));
  const started = new Date();
  const load = os.loadavg().map((x) => x.toFixed(2)).join(", ");
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
  console.log(`hakube bench — ${started.toISOString()}\nmachine: ${machine}\nload average at start: ${load}\nnode flags for the program: ${nodeArgs.join(" ") || "(none)"}\n`);

  // 1 + 2: evaluation cost, floor, determinism
  const evals: Report["evaluations"] = [];
  const determinism: Report["determinism"] = [];
  for (const n of sizes) {
    const state = path.join(tmp, `state-${n}.json`);
    const d1 = path.join(tmp, `digests-${n}-a.json`);
    const d2 = path.join(tmp, `digests-${n}-b.json`);
    process.stderr.write(`evaluating ${n} hosts...`);
    const e = child(["topology", String(n), "--state-out", state, "--digests-out", d1], nodeArgs);
    process.stderr.write(` ${s(e.evaluationMs)} s; floor...`);
    const f = child(["floor", String(e.customResources), String(e.components)], nodeArgs);
    process.stderr.write(` ${s(f.evaluationMs)} s; again for determinism...`);
    child(["topology", String(n), "--state-in", state, "--digests-out", d2], nodeArgs);
    process.stderr.write(" done\n");
    const a = JSON.parse(fs.readFileSync(d1, "utf8")).digests;
    const b = JSON.parse(fs.readFileSync(d2, "utf8")).digests;
    const diff = diffInputs(a, b);
    determinism.push({ hosts: n, resources: Object.keys(a).length, differing: diff.changed.length, added: diff.added.length, removed: diff.removed.length, examples: [...diff.changed, ...diff.added, ...diff.removed].slice(0, 5) });
    evals.push({ ...(e as unknown as Evaluation), floor: f as unknown as Evaluation["floor"] });
  }

  // 3: blast radius
  const baseState = path.join(tmp, `state-${blastSize}.json`);
  const baseDigests = path.join(tmp, `digests-${blastSize}-a.json`);
  if (!fs.existsSync(baseState)) child(["topology", String(blastSize), "--state-out", baseState, "--digests-out", baseDigests], nodeArgs);
  const base = JSON.parse(fs.readFileSync(baseDigests, "utf8")).digests;
  const blast: Report["blast"] = [];
  for (const knob of KNOBS) {
    process.stderr.write(`blast radius: ${knob.id}...\n`);
    const out = path.join(tmp, `digests-${blastSize}-${knob.id}.json`);
    child(["topology", String(blastSize), "--knob", knob.id, "--state-in", baseState, "--digests-out", out], nodeArgs);
    const { hostNames, digests } = JSON.parse(fs.readFileSync(out, "utf8"));
    const diff = diffInputs(base, digests);
    const res = checkBlast(knob, knob.change(benchTopology(blastSize)), diff);
    blast.push({ ...res, what: knob.what, allowed: knob.allowed, kinds: summarizeKinds([...diff.changed, ...diff.added], hostNames) });
  }

  // 4: the lab cluster's bring-up (root with the toolchain), with 2 and 6 workers
  const b = bringUp();
  if (typeof b === "string") console.error(`bring-up: ${b}`);
  const endLoad = os.loadavg().map((x) => x.toFixed(2)).join(", ");
  const report: Report = {
    ...(typeof b === "string" ? {} : { bringUp: b }), date: started.toISOString(), machine, loadStart: load, loadEnd: endLoad, nodeArgs, evaluations: evals, determinism, blastSize, blastResources: Object.keys(base).length, blast };
  console.log(renderReport(report));
  const reports = path.join(ROOT, "reports");
  fs.mkdirSync(reports, { recursive: true });
  fs.writeFileSync(path.join(reports, "bench.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(`figures: ${path.join(reports, "bench.json")}`);
  if (process.argv.includes("--docs")) writeDocs(report);
  fs.rmSync(tmp, { recursive: true, force: true });
  const bad = determinism.some((d) => d.differing + d.added + d.removed > 0) || blast.some((b) => b.violations.length > 0);
  if (bad) {
    console.error("bench: determinism or blast-radius check FAILED (see the tables)");
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
