/**
 * Performance figures (printed, not asserted):
 *
 *   npm run bench:lab [-- --no-lab] [--engine nginx] [--keep]
 *
 * 1. Program evaluation under record-only mocks (no host touched): the `dev` stack and synthetic
 *    stacks of 30 and 100 hosts, each in its own process (the program module evaluates once per
 *    process).
 * 2. With the lab (root; skipped with --no-lab): for each worker count of --workers (default 2,6;
 *    `dev` has 2, more are added at 10.123.0.43…): bring-up wall time (`lab down` + `lab up`: fresh
 *    hosts), a fresh deploy of the whole cluster through the realizing harness (every command run:
 *    wall time, critical path from the recorded command timings, their ratio, commands per host),
 *    and how the wall time grows with the workers; then `lab down` unless --keep.
 * Figures also go to reports/bench-lab.json.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { evaluateProgram, readStackFile, ROOT, TEST_SSH_KEY, type StackConfig } from "../harness/program";
import { REPORT_DIR } from "./report";

/** A valid stack of N hosts: 2 load balancers, 3 etcd, 3 control planes, the rest workers. */
export function syntheticConfig(n: number): StackConfig {
  const roles = (i: number) => (i < 2 ? ["loadbalancer"] : i < 5 ? ["etcd"] : i < 8 ? ["controlplane"] : ["worker"]);
  const name = (i: number) => (i < 2 ? `lb${i + 1}` : i < 5 ? `etcd${i - 1}` : i < 8 ? `cp${i - 4}` : `worker${i - 7}`);
  const hosts = Array.from({ length: n }, (_, i) => ({ name: name(i), address: `10.200.${Math.floor(i / 200)}.${(i % 200) + 10}`, roles: roles(i) }));
  const dev = readStackFile("Pulumi.dev.yaml");
  return {
    ...dev,
    "hakube:clusterName": `bench${n}`,
    "hakube:hosts": hosts,
    "hakube:loadBalancer": { ...(dev["hakube:loadBalancer"] as object), vip: "10.200.0.250", interface: "eth0" },
    "hakube:sshPrivateKey": TEST_SSH_KEY,
  };
}

async function evalChild(which: string) {
  const config = which === "dev" ? { ...readStackFile("Pulumi.dev.yaml"), "hakube:sshPrivateKey": TEST_SSH_KEY } : syntheticConfig(Number(which));
  const t0 = performance.now();
  const r = await evaluateProgram(config);
  const ms = performance.now() - t0;
  if (r.error) throw r.error;
  const regs = r.harness.registrations;
  process.stdout.write(
    JSON.stringify({
      which,
      hosts: (config["hakube:hosts"] as unknown[]).length,
      evaluationMs: Math.round(ms),
      resources: regs.length,
      commands: regs.filter((x) => x.type === "command:remote:Command").length,
      processMs: Math.round(performance.now()),
    }) + "\n",
  );
}

function evaluations(): Record<string, unknown>[] {
  const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
  return ["dev", "30", "100"].map((which) => {
    const t0 = performance.now();
    const r = spawnSync(tsx, [__filename, "--eval-child", which], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`evaluation of ${which} failed: ${r.stderr}`);
    const line = r.stdout.trim().split("\n").pop()!;
    return { ...JSON.parse(line), wallMs: Math.round(performance.now() - t0) };
  });
}

/** CPU time (ms) this machine has spent busy (every core; /proc/stat: all but idle and iowait). */
function machineBusyMs(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const ticks = f.reduce((a, b) => a + b, 0) - f[3] - f[4];
  return Math.round((ticks * 1000) / 100); // USER_HZ is 100 on Linux
}

/** Pulumi.dev.yaml with N workers (the extra ones after worker2, at 10.123.0.43…), written for `lab up`. */
function stackWithWorkers(n: number): string {
  const { parse, stringify } = require("yaml") as typeof import("yaml");
  const doc = parse(fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8"));
  const hosts = doc.config["hakube:hosts"] as { name: string; address: string; roles: string[]; labels?: object }[];
  const workers = hosts.filter((h) => h.roles.includes("worker"));
  for (let i = workers.length + 1; i <= n; i++) hosts.push({ ...workers[0], name: `worker${i}`, address: `10.123.0.${40 + i}` });
  doc.config["hakube:hosts"] = hosts.filter((h) => !h.roles.includes("worker") || Number(h.name.replace(/\D/g, "")) <= n);
  const file = path.join(REPORT_DIR, `bench-stack-${n}-workers.yaml`);
  fs.mkdirSync(REPORT_DIR, { recursive: true });
  fs.writeFileSync(file, stringify(doc));
  return file;
}

async function labFigures(engine: string | undefined, keep: boolean, workers: number) {
  // the lab boots the hosts of this stack file; Kubernetes hosts keep their fsyncs (as in cluster.test.ts)
  process.env.HAKUBE_LAB_STACK = stackWithWorkers(workers);
  process.env.HAKUBE_LAB_SUPPRESS_SYNC = "0";
  const { labRun, topology, hostCpuMs } = await import("./labctl");
  const { deployLab } = await import("./deploy");
  const down = await labRun(["down"]);
  const up = await labRun(["up"]);
  const hosts = topology().hosts;
  const hostCpu = () => Object.fromEntries(hosts.map((h) => [h.name, hostCpuMs(h.name) ?? NaN]));
  const cpu0 = { hosts: hostCpu(), machine: machineBusyMs(), self: process.cpuUsage() };
  const overrides: StackConfig = {};
  if (engine) overrides["hakube:loadBalancer"] = { ...(readStackFile("Pulumi.dev.yaml")["hakube:loadBalancer"] as object), engine };
  const d = await deployLab({ overrides, statePath: false, log: () => undefined });
  const f = d.figures;
  const steps = d.executions.filter((e) => !e.skipped);
  const cpu1 = { hosts: hostCpu(), machine: machineBusyMs(), self: process.cpuUsage(cpu0.self) };
  const perHost = Object.fromEntries(hosts.map((h) => [h.name, Math.round(cpu1.hosts[h.name] - cpu0.hosts[h.name])]));
  const perRole: Record<string, number> = {};
  for (const h of hosts) perRole[h.roles.join("+")] = (perRole[h.roles.join("+")] ?? 0) + perHost[h.name];
  const machineBusy = cpu1.machine - cpu0.machine;
  const cores = os.cpus().length;
  const cpu = {
    cores,
    hostsMs: Object.values(perHost).reduce((a, b) => a + b, 0),
    perRoleMs: perRole,
    perHostMs: perHost,
    harnessMs: Math.round((cpu1.self.user + cpu1.self.system) / 1000),
    machineBusyMs: machineBusy,
    /** the shortest wall time this much CPU work allows on this machine */
    floorMs: Math.round(machineBusy / cores),
    busyFraction: Number((machineBusy / (cores * f.wallMs)).toFixed(2)),
  };
  const out = {
    workers,
    labDownMs: Math.round(down.ms),
    labUpMs: Math.round(up.ms),
    upReported: /whole up ([\d.]+ s \(image \d+ s\))/.exec(up.stderr)?.[1],
    deployWallMs: f.wallMs,
    evaluationMs: f.evaluationMs,
    executed: f.executed,
    recordedOnly: f.skipped,
    criticalPathMs: f.criticalPathMs,
    ratio: Number((f.wallMs / Math.max(1, f.criticalPathMs)).toFixed(2)),
    criticalPath: f.criticalPath.map((n) => `${n} ${((steps.find((e) => e.name === n)!.endMs - steps.find((e) => e.name === n)!.startMs) / 1000).toFixed(2)}s`),
    commandsPerHost: f.commandsPerHost,
    sumOfCommandMs: steps.reduce((a, e) => a + e.endMs - e.startMs, 0),
    cpu,
    slowest: [...steps].sort((a, b) => b.endMs - b.startMs - (a.endMs - a.startMs)).slice(0, 5).map((e) => `${e.name} ${((e.endMs - e.startMs) / 1000).toFixed(2)}s`),
  };
  if (!keep) await labRun(["down"]);
  return out;
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === "--eval-child") return evalChild(args[1]);
  if (args[0] === "--lab-child") {
    // one worker count per process: the program module evaluates once per process
    const one = await labFigures(args[2] === "-" ? undefined : args[2], args[3] === "keep", Number(args[1]));
    process.stdout.write("\n" + JSON.stringify(one) + "\n");
    return;
  }
  const engine = args.includes("--engine") ? args[args.indexOf("--engine") + 1] : undefined;
  const noLab = args.includes("--no-lab") || process.getuid?.() !== 0;
  console.log("program evaluation under record-only mocks (one process each):");
  const evals = evaluations();
  for (const e of evals) console.log(`  ${String(e.which).padEnd(4)} ${String(e.hosts).padStart(3)} hosts: ${String(e.evaluationMs).padStart(6)} ms evaluation (${e.resources} resources, ${e.commands} commands); process ${e.wallMs} ms`);
  const lab: Awaited<ReturnType<typeof labFigures>>[] = [];
  const counts = (args.includes("--workers") ? args[args.indexOf("--workers") + 1] : "2,6").split(",").map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 9)) throw new Error(`--workers wants counts 1–9 (10.123.0.41–49), got ${counts.join(",")}`);
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  if (noLab) console.log("\nlab figures skipped (--no-lab, or not root)");
  else for (const [i, n] of counts.entries()) {
    console.log(`\nlab: down, up (fresh hosts), deploy dev with ${n} workers${engine ? ` (engine ${engine})` : ""} through the realizing harness, every command run...`);
    const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
    const keep = args.includes("--keep") && i === counts.length - 1;
    const r = spawnSync(tsx, [__filename, "--lab-child", String(n), engine ?? "-", keep ? "keep" : "no"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] });
    if (r.status !== 0) throw new Error(`lab figures with ${n} workers failed (exit ${r.status})`);
    const one = JSON.parse(r.stdout.trim().split("\n").pop()!) as Awaited<ReturnType<typeof labFigures>>;
    lab.push(one);
    console.log(`  lab bring-up (up, fresh hosts):   ${s(one.labUpMs)}  (lab's own figure: ${one.upReported}; down before: ${s(one.labDownMs)})`);
    console.log(`  deploy wall time:                 ${s(one.deployWallMs)}  (program evaluation ~${s(one.evaluationMs)}; ${one.executed} commands run, ${one.recordedOnly} recorded only)`);
    console.log(`  critical path (recorded timings): ${s(one.criticalPathMs)}  ratio wall/critical ${one.ratio}; sum of all command times ${s(one.sumOfCommandMs)}`);
    console.log(`  critical path: ${one.criticalPath.join(" → ")}`);
    console.log(`  commands per host: ${Object.entries(one.commandsPerHost).map(([h, n]) => `${h} ${n}`).join(", ")}`);
    console.log(`  slowest commands: ${one.slowest.join(", ")}`);
    const c = one.cpu;
    console.log(`  CPU during the deploy: ${s(c.machineBusyMs)} on ${c.cores} cores (busy ${Math.round(c.busyFraction * 100)} % of the wall time; floor ${s(c.floorMs)}): hosts ${s(c.hostsMs)} (${Object.entries(c.perRoleMs).map(([r, ms]) => `${r} ${s(ms)}`).join(", ")}), harness ${s(c.harnessMs)}`);
  }
  if (lab.length > 1) {
    const [a, b] = [lab[0], lab[lab.length - 1]];
    console.log(`\ngrowth: deploy wall ${s(a.deployWallMs)} with ${a.workers} workers → ${s(b.deployWallMs)} with ${b.workers}: × ${(b.deployWallMs / a.deployWallMs).toFixed(2)} (goal ≤ 1.2); CPU × ${(b.cpu.machineBusyMs / a.cpu.machineBusyMs).toFixed(2)}, critical path × ${(b.criticalPathMs / a.criticalPathMs).toFixed(2)}`);
  }
  fs.mkdirSync(REPORT_DIR, { recursive: true });
  const file = path.join(REPORT_DIR, "bench-lab.json");
  fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), evaluations: evals, lab }, null, 2) + "\n");
  console.log(`\nfigures: ${file}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
