/**
 * The lab suite's report: `reports/lab-<engine>.json` (every figure and check result of one
 * engine's run) and `reports/lab.md` (a summary table over the engines' JSON files present).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROOT } from "../harness/program";

export const REPORT_DIR = process.env.HAKUBE_REPORT_DIR ?? path.join(ROOT, "reports");

export class LabReport {
  readonly data: Record<string, unknown>;
  constructor(readonly engine: string) {
    this.data = {
      engine,
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release() },
    };
  }
  /** Record a figure or result (printed too). */
  set(key: string, value: unknown, print = true): void {
    this.data[key] = value;
    if (print) console.log(`[lab ${this.engine}] ${key}: ${JSON.stringify(value)}`);
  }
  get(key: string): any {
    return this.data[key];
  }
  write(): string {
    fs.mkdirSync(REPORT_DIR, { recursive: true });
    const file = path.join(REPORT_DIR, `lab-${this.engine}.json`);
    fs.writeFileSync(file, JSON.stringify(this.data, null, 2) + "\n");
    writeSummary();
    return file;
  }
}

type Row = [label: string, pick: (d: any) => unknown];
const ms = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? `${Math.round(v)} ms` : v === undefined ? "—" : String(v));
const s = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? `${(v / 1000).toFixed(1)} s` : "—");

const ROWS: Row[] = [
  ["lab down (before) / up", (d) => `${s(d.lab?.downMs)} / ${s(d.lab?.upMs)}`],
  ["deploy wall time", (d) => s(d.deploy?.wallMs)],
  ["deploy: commands executed / recorded only", (d) => (d.deploy ? `${d.deploy.executed} / ${d.deploy.skipped}` : "—")],
  ["critical path (ratio wall / critical)", (d) => (d.deploy ? `${s(d.deploy.criticalPathMs)} (${d.deploy.ratio})` : "—")],
  ["idempotency: re-runs exit 0 / files changed / unit events", (d) => (d.idempotency ? `${d.idempotency.ok}/${d.idempotency.reruns} / ${d.idempotency.fileChanges} / ${d.idempotency.unitEvents}` : "—")],
  ["idempotency: re-run time (all commands)", (d) => s(d.idempotency?.totalMs)],
  ["unchanged deploy: commands run", (d) => d.unchangedDeploy?.executed ?? "—"],
  ["secrets: needles / files outside key files / journal hits", (d) => (d.secrets ? `${d.secrets.needles} / ${d.secrets.leaks} / ${d.secrets.journalHits}` : "—")],
  ["crash of the VIP holder → VIP:port connects again (from the kill)", (d) => ms(d.faults?.crash?.recoveredAfterKillMs)],
  ["crash: VIP on the other load balancer (from the kill)", (d) => ms(d.faults?.crash?.vipMovedAfterKillMs)],
  ["crash: client outage (last good → first good connect)", (d) => ms(d.faults?.crash?.outageMs)],
  ["engine stopped on the holder → VIP moved", (d) => ms(d.faults?.stopEngine?.vipMovedMs)],
  ["engine stopped: client outage", (d) => ms(d.faults?.stopEngine?.outageMs)],
  ["unplug of the holder → VIP moved / client outage", (d) => `${ms(d.faults?.unplug?.vipMovedMs)} / ${ms(d.faults?.unplug?.outageMs)}`],
  ["plug again → exactly one holder after", (d) => ms(d.faults?.unplug?.singleHolderAfterPlugMs)],
  ["etcd write latency, one member down (p50 / p99 / max)", (d) => (d.faults?.etcdFollower ? `${ms(d.faults.etcdFollower.p50Ms)} / ${ms(d.faults.etcdFollower.p99Ms)} / ${ms(d.faults.etcdFollower.maxMs)}` : "—")],
  ["etcd write latency, all members up (p50)", (d) => ms(d.faults?.etcdFollower?.baselineP50Ms)],
  ["etcd member rejoin (lab start → member healthy)", (d) => ms(d.faults?.etcdFollower?.rejoinMs)],
  ["etcd leader crash → writes fail for", (d) => ms(d.faults?.etcdLeader?.unavailableMs)],
  ["CPU load (busy loops on every core, machine + each LB): 100 ms samples / without exactly one holder / VIP moves", (d) => (d.faults?.load ? `${d.faults.load.samples} / ${d.faults.load.samplesWithoutExactlyOneHolder} / ${d.faults.load.vipMoves} in ${d.faults.load.minutes} min` : "not run")],
  ["CPU load: machine load average (1 min; min–max)", (d) => (d.faults?.load ? `${d.faults.load.loadAvg1m.min}–${d.faults.load.loadAvg1m.max}` : "—")],
  ["CPU load: keepalived state changes / check timeouts / FAULT (all LBs)", (d) => {
    const k = d.faults?.load?.keepalived as Record<string, Record<string, number>> | undefined;
    if (!k) return "—";
    const sum = (f: string) => Object.values(k).reduce((a, x) => a + (x[f] ?? 0), 0);
    return `${sum("stateChanges")} / ${sum("checkTimedOut")} / ${sum("fault")}`;
  }],
  ["under load: crash of the holder → VIP on the other (from the kill) / VIP:port connects", (d) => (d.faults?.loadCrash ? `${ms(d.faults.loadCrash.vipMovedAfterKillMs)} / ${ms(d.faults.loadCrash.recoveredAfterKillMs)}` : "—")],
  ["under load: engine stopped on the holder → VIP moved", (d) => ms(d.faults?.loadStopEngine?.vipMovedMs)],
  ["partition of the holder → both hold after; heal → second move back to the cut-off host?", (d) =>
    Array.isArray(d.faults?.partition)
      ? d.faults.partition.map((r: any) => `${r.partitioned} cut off: ${ms(r.bothHoldAfterMs)}; heal → ${r.holderAfterHeal}${r.secondMove ? " (moved back)" : " (stayed)"}`).join("; ")
      : "—"],
  ["cluster: nodes Ready (after the deploy)", (d) => (d.nodes ? `${d.nodes.count} (${s(d.nodes.readyAfterDeployMs)})` : "—")],
  ["cluster: VIP holder crash → longest /readyz gap / failed reads / failed writes", (d) => (d.faults?.vipHolderCrash ? `${ms(d.faults.vipHolderCrash.longestReadGapMs)} / ${d.faults.vipHolderCrash.failedReads} / ${d.faults.vipHolderCrash.failedWrites}` : "—")],
  ["cluster: kube-apiserver stopped → HAProxy mark-down (after the port closed) / failed calls after it", (d) => (d.faults?.apiserverStopped ? `${ms(d.faults.apiserverStopped.markedDownAfterPortClosedMs)} / ${d.faults.apiserverStopped.failedAfterMarkDown}` : "—")],
  ["cluster: etcd follower host crash → failed writes / longest /readyz gap", (d) => (d.faults?.etcdFollowerCrash ? `${d.faults.etcdFollowerCrash.failedWrites} / ${ms(d.faults.etcdFollowerCrash.longestReadGapMs)}` : "—")],
  ["cluster: etcd leader host crash → failed writes / longest /readyz gap", (d) => (d.faults?.etcdLeaderCrash ? `${d.faults.etcdLeaderCrash.failedWrites} / ${ms(d.faults.etcdLeaderCrash.longestReadGapMs)}` : "—")],
  ["cluster: control-plane host crash → failed reads / writes / longest gap", (d) => (d.faults?.controlPlaneCrash ? `${d.faults.controlPlaneCrash.failedReads} / ${d.faults.controlPlaneCrash.failedWrites} / ${ms(d.faults.controlPlaneCrash.longestReadGapMs)}` : "—")],
  ["cluster: worker crash → NotReady / pods elsewhere / ingress failures (all, after)", (d) => (d.faults?.workerCrash ? `${s(d.faults.workerCrash.notReadyAfterCrashMs)} / ${s(d.faults.workerCrash.podsElsewhereAfterCrashMs)} / ${d.faults.workerCrash.ingressFails} of ${d.faults.workerCrash.ingressCalls}, ${d.faults.workerCrash.ingressFailsAfterReschedule}` : "—")],
  ["soak: spurious VIP moves", (d) => (d.soak ? `${d.soak.vipMoves} in ${s(d.soak.ms)}` : "not run")],
];

/** reports/lab.md from every reports/lab-<engine>.json present. */
export function writeSummary(): void {
  const files = fs.existsSync(REPORT_DIR) ? fs.readdirSync(REPORT_DIR).filter((f) => /^lab-[a-z0-9]+\.json$/.test(f)).sort() : [];
  const runs = files.map((f) => JSON.parse(fs.readFileSync(path.join(REPORT_DIR, f), "utf8")));
  if (!runs.length) return;
  const lines = [
    "# hakube lab: end-to-end figures",
    "",
    `Written by \`npm run test:lab\` (test/lab/). Machine: ${runs[0].machine.cpus} cores, ${runs[0].machine.memGiB} GiB, kernel ${runs[0].machine.kernel}.`,
    "",
    `| figure | ${runs.map((r) => `${r.engine} (${String(r.date).slice(0, 16)})`).join(" | ")} |`,
    `|---|${runs.map(() => "---").join("|")}|`,
    ...ROWS.map(([label, pick]) => `| ${label} | ${runs.map((r) => String(pick(r) ?? "—")).join(" | ")} |`),
    "",
  ];
  fs.writeFileSync(path.join(REPORT_DIR, "lab.md"), lines.join("\n"));
}
