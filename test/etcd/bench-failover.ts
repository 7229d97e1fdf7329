/**
 * etcd leader failover benchmark: `npm run bench:etcd` (root; Linux network namespaces).
 *
 * For each etcd binary × raft tuning (heartbeat/election timeout) × load (idle, CPU hog):
 *   - a 3-member cluster with hakube's own member configuration (`memberConfig`, mutual TLS on
 *     both ports), each member in its own network namespace on a private bridge (10.239.0.0/24),
 *     data dirs on disk;
 *   - spurious elections: every cluster of a version runs side by side for `--window` seconds with
 *     no fault, a writer every 50 ms on each, raft terms and leaders polled every 250 ms;
 *   - leader power cut, `--trials` times per tuning: a client writes every `--interval` ms through
 *     a surviving member (open loop, 2 s deadline per write); the leader's link is cut (its veth
 *     goes down, so no FIN/RST reaches the peers, as with a power cut) and it is SIGKILLed; the
 *     longest gap between successful writes and the time to the first write sent after the cut
 *     are recorded; the member is then started again and rejoins.
 * Load: `stress-ng --cpu <2 × cores>` (or bash busy loops), bounded by its own timeout and killed
 * by PID. Prints a table (and `--json FILE`). Everything it creates (namespaces, bridge, temp dir,
 * processes) is removed at the end, also on Ctrl-C.
 *
 * Options: --etcd PATH[,PATH] (default /usr/bin/etcd and /var/cache/hakube-lab/etcd-bench/etcd
 * when present; test/etcd/bench-build-etcd.sh builds the latter from the Go module proxy), --tunings 100/1000,150/1500,200/2000,250/2500, --loads idle,loaded,
 * --trials 3, --window 180, --interval 25, --json FILE.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { memberConfig, type EtcdMember, type EtcdTuning } from "../../components/etcd/render";
import { analyzeGap, EtcdGrpc, now, sleep, steadyStats, Writer, type ClientTls, type GapReport } from "./failover";

/* ------------------------------------------------------------------ options */

function opt(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const defaultBins = ["/usr/bin/etcd", "/var/cache/hakube-lab/etcd-bench/etcd"].filter((b) => fs.existsSync(b));
const BINS = opt("etcd", defaultBins.join(",")).split(",").filter(Boolean);
const TUNINGS: EtcdTuning[] = opt("tunings", "100/1000,150/1500,200/2000,250/2500")
  .split(",")
  .map((t) => {
    const [h, e] = t.split("/").map(Number);
    return { heartbeatIntervalMs: h, electionTimeoutMs: e };
  });
const LOADS = opt("loads", "idle,loaded").split(",") as ("idle" | "loaded")[];
const TRIALS = Number(opt("trials", "3"));
const WINDOW_S = Number(opt("window", "180"));
const INTERVAL_MS = Number(opt("interval", "25"));
const JSON_OUT = opt("json", "");
const CORES = os.cpus().length;

const SUBNET = "10.239.0";
const BRIDGE = "hkbe0";
const tuningLabel = (t: EtcdTuning) => `${t.heartbeatIntervalMs}/${t.electionTimeoutMs}`;

/* ------------------------------------------------------------------ machine plumbing */

function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout ?? "";
}
const created = { netns: [] as string[], bridge: false, procs: new Set<ChildProcess>(), base: "" };

function cleanup(): void {
  for (const p of created.procs) {
    try {
      if (p.pid && p.exitCode === null) process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  for (const ns of created.netns) sh("ip", ["netns", "del", ns], true);
  created.netns = [];
  if (created.bridge) sh("ip", ["link", "del", BRIDGE], true);
  created.bridge = false;
  if (created.base) fs.rmSync(created.base, { recursive: true, force: true });
  created.base = "";
}
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });

function setupBridge(): void {
  if (sh("ip", ["link", "show", BRIDGE], true)) throw new Error(`${BRIDGE} exists already (another run?): remove it with ip link del ${BRIDGE}`);
  sh("ip", ["link", "add", BRIDGE, "type", "bridge"]);
  created.bridge = true;
  sh("ip", ["addr", "add", `${SUBNET}.1/24`, "dev", BRIDGE]);
  sh("ip", ["link", "set", BRIDGE, "up"]);
}

/** A member's namespace `hkbe-<id>`, its veth `hkbe<id>h` on the bridge, address 10.239.0.<id>. */
function setupNetns(id: number): { ns: string; veth: string; address: string } {
  const ns = `hkbe-${id}`;
  const veth = `hkbe${id}h`;
  sh("ip", ["netns", "add", ns]);
  created.netns.push(ns);
  sh("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  sh("ip", ["link", "set", veth, "master", BRIDGE, "up"]);
  sh("ip", ["-n", ns, "addr", "add", `${SUBNET}.${id}/24`, "dev", "eth0"]);
  sh("ip", ["-n", ns, "link", "set", "eth0", "up"]);
  sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
  return { ns, veth, address: `${SUBNET}.${id}` };
}

/** One CA and one certificate (server + client auth, every member's IP) for the whole bench. */
function makePki(dir: string, addresses: string[]): ClientTls {
  const o = (...a: string[]) => sh("openssl", a);
  o("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${dir}/ca.key`);
  o("req", "-x509", "-new", "-key", `${dir}/ca.key`, "-subj", "/CN=hakube-bench-ca", "-days", "2", "-out", `${dir}/ca.crt`);
  o("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${dir}/server.key`);
  o("req", "-new", "-key", `${dir}/server.key`, "-subj", "/CN=hakube-bench-member", "-out", `${dir}/server.csr`);
  fs.writeFileSync(
    `${dir}/ext.cnf`,
    `subjectAltName=${["127.0.0.1", ...addresses].map((a) => `IP:${a}`).join(",")},DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  o("x509", "-req", "-in", `${dir}/server.csr`, "-CA", `${dir}/ca.crt`, "-CAkey", `${dir}/ca.key`, "-CAcreateserial", "-days", "2", "-extfile", `${dir}/ext.cnf`, "-out", `${dir}/server.crt`);
  for (const f of ["crt", "key"]) fs.copyFileSync(`${dir}/server.${f}`, `${dir}/peer.${f}`);
  return { caPem: fs.readFileSync(`${dir}/ca.crt`, "utf8"), certPem: fs.readFileSync(`${dir}/server.crt`, "utf8"), keyPem: fs.readFileSync(`${dir}/server.key`, "utf8") };
}

/* ------------------------------------------------------------------ clusters */

interface Member {
  name: string;
  id: number;
  ns: string;
  veth: string;
  address: string;
  configFile: string;
  log: string;
  proc?: ChildProcess;
  client: EtcdGrpc;
}

class Cluster {
  readonly members: Member[] = [];
  constructor(
    readonly bin: string,
    readonly tuning: EtcdTuning,
    readonly slot: number,
    base: string,
    pkiDir: string,
    readonly tls: ClientTls,
  ) {
    const ms: EtcdMember[] = [1, 2, 3].map((m) => ({ name: `m${m}`, internalAddress: `${SUBNET}.${slot * 10 + m}` }));
    for (const [i, em] of ms.entries()) {
      const id = slot * 10 + i + 1;
      const net = setupNetns(id);
      const dir = path.join(base, `c${slot}-${em.name}`);
      fs.mkdirSync(dir, { recursive: true });
      const cfg = memberConfig({
        member: em,
        members: ms,
        clusterName: `bench${slot}`,
        dataDir: path.join(dir, "data"),
        paths: { configDir: dir, pkiDir, configFile: path.join(dir, "etcd.conf.yml"), unitFile: "/nonexistent", stateDir: dir, binDir: "/nonexistent", distBinDir: "/nonexistent" },
        listenLocalhost: false,
        tuning,
      });
      const configFile = path.join(dir, "etcd.conf.yml");
      fs.writeFileSync(configFile, stringify(cfg, { lineWidth: 0 }));
      this.members.push({ name: em.name, id, ...net, configFile, log: path.join(dir, "etcd.log"), client: new EtcdGrpc(`https://${net.address}:2379`, tls) });
    }
  }
  start(m: Member): void {
    const fd = fs.openSync(m.log, "a");
    const p = spawn("ip", ["netns", "exec", m.ns, this.bin, `--config-file=${m.configFile}`], { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    created.procs.add(p);
    p.on("exit", () => created.procs.delete(p));
    m.proc = p;
  }
  startAll(): void {
    for (const m of this.members) this.start(m);
  }
  async statuses(): Promise<(Awaited<ReturnType<EtcdGrpc["status"]>> | undefined)[]> {
    return Promise.all(this.members.map((m) => m.client.status(800).catch(() => undefined)));
  }
  /** The leader (index), once every running member agrees on one. */
  async waitLeader(timeoutMs = 60_000, needAll = true): Promise<number> {
    const end = now() + timeoutMs;
    while (now() < end) {
      const st = await this.statuses();
      const up = st.filter((s) => s !== undefined);
      const leaders = new Set(up.map((s) => s!.leader));
      if ((!needAll || up.length === this.members.length) && up.length >= 2 && leaders.size === 1 && !leaders.has(0n)) {
        const leader = [...leaders][0];
        const idx = st.findIndex((s) => s?.memberId === leader);
        if (idx >= 0) return idx;
      }
      await sleep(200);
    }
    throw new Error(`cluster ${this.slot} (${this.bin}, ${tuningLabel(this.tuning)}): no agreed leader within ${timeoutMs} ms (logs: ${this.members.map((m) => m.log).join(" ")})`);
  }
  async maxTerm(): Promise<bigint> {
    return (await this.statuses()).reduce((a, s) => (s && s.raftTerm > a ? s.raftTerm : a), 0n);
  }
  /** Power cut: the link goes down first (no FIN/RST leaves), then SIGKILL. */
  powerCut(m: Member): void {
    sh("ip", ["link", "set", m.veth, "down"]);
    if (m.proc?.pid) process.kill(m.proc.pid, "SIGKILL");
  }
  async powerOn(m: Member): Promise<void> {
    if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) await new Promise((r) => m.proc!.once("exit", r));
    sh("ip", ["link", "set", m.veth, "up"]);
    this.start(m);
  }
  stop(): void {
    for (const m of this.members) {
      m.client.close();
      if (m.proc?.pid && m.proc.exitCode === null) process.kill(m.proc.pid, "SIGKILL");
    }
  }
}

/* ------------------------------------------------------------------ load */

function startHog(seconds: number): ChildProcess[] {
  const has = spawnSync("bash", ["-c", "command -v stress-ng"]).status === 0;
  const procs = has
    ? [spawn("stress-ng", ["--cpu", String(2 * CORES), "--timeout", `${seconds}s`, "--quiet"], { stdio: "ignore" })]
    : Array.from({ length: 2 * CORES }, () => spawn("timeout", [`${seconds}`, "bash", "-c", "while :; do :; done"], { stdio: "ignore" }));
  for (const p of procs) {
    created.procs.add(p);
    p.on("exit", () => created.procs.delete(p));
  }
  return procs;
}
async function stopHog(procs: ChildProcess[]): Promise<void> {
  for (const p of procs) {
    if (p.pid && p.exitCode === null) {
      const gone = new Promise((r) => p.once("exit", r));
      process.kill(p.pid, "SIGTERM");
      await Promise.race([gone, sleep(5000)]);
    }
  }
}

/* ------------------------------------------------------------------ measurements */

interface SteadyResult {
  /** raft term at the start and end of the window (every election, won or not, increments it) */
  terms: [number, number];
  elections: number;
  leaderChanges: number;
  longestGapMs: number;
  maxLatencyMs: number;
  failedWrites: number;
}
/** No fault for `seconds`: terms and leader changes on every cluster, a writer every 50 ms on each. */
async function steady(clusters: Cluster[], seconds: number): Promise<SteadyResult[]> {
  const startTerms = await Promise.all(clusters.map((c) => c.maxTerm()));
  const writers = clusters.map((c) => new Writer(c.members[0].client, 50));
  const lastLeader: (bigint | undefined)[] = clusters.map(() => undefined);
  const changes = clusters.map(() => 0);
  const end = now() + seconds * 1000;
  while (now() < end) {
    await Promise.all(
      clusters.map(async (c, i) => {
        const st = await c.statuses();
        const l = st.find((s) => s && s.leader !== 0n)?.leader;
        if (l !== undefined) {
          if (lastLeader[i] !== undefined && l !== lastLeader[i]) changes[i]++;
          lastLeader[i] = l;
        }
      }),
    );
    await sleep(250);
  }
  const samples = await Promise.all(writers.map((w) => w.stop()));
  const endTerms = await Promise.all(clusters.map((c) => c.maxTerm()));
  return clusters.map((_, i) => {
    const s = steadyStats(samples[i]);
    return { terms: [Number(startTerms[i]), Number(endTerms[i])], elections: Number(endTerms[i] - startTerms[i]), leaderChanges: changes[i], longestGapMs: s.longestGapMs, maxLatencyMs: s.maxLatencyMs, failedWrites: s.failed };
  });
}

/** Power-cut the leader while a client writes through a surviving member; restart it afterwards. */
async function failover(c: Cluster): Promise<GapReport & { terms: [number, number] }> {
  const li = await c.waitLeader();
  const term0 = Number(await c.maxTerm());
  const leader = c.members[li];
  const via = c.members[(li + 1) % c.members.length];
  const w = new Writer(via.client, INTERVAL_MS, 2000);
  await sleep(1500);
  const cut = now();
  c.powerCut(leader);
  const end = cut + 30_000;
  while (now() < end && !w.okSince(cut)) await sleep(20);
  await sleep(1500);
  const samples = await w.stop();
  const r = analyzeGap(samples, cut);
  if (!w.okSince(cut)) r.firstWriteAfterMs = NaN;
  const term1 = Number(await c.maxTerm());
  await c.powerOn(leader);
  await c.waitLeader(60_000, true);
  // let the restarted member catch up and settle before the next trial
  await sleep(Math.max(2000, 2 * c.tuning.electionTimeoutMs));
  return { ...r, terms: [term0, term1] };
}

/* ------------------------------------------------------------------ main */

interface Row {
  etcd: string;
  tuning: string;
  load: string;
  firstWriteMs: number[];
  longestGapMs: number[];
  steady: SteadyResult;
}

function etcdVersion(bin: string): string {
  const m = /etcd Version: (\S+)/.exec(sh(bin, ["--version"]));
  return m ? m[1] : "?";
}

function table(rows: Row[]): string {
  const f = (xs: number[]) => xs.map((x) => (Number.isNaN(x) ? ">30000" : String(x))).join(", ");
  const max = (xs: number[]) => (xs.some(Number.isNaN) ? ">30000" : String(Math.max(...xs)));
  const head = ["etcd", "heartbeat/election ms", "load", "first write after leader cut, ms (trials)", "longest write gap, ms (max)", `elections w/o fault (${WINDOW_S} s)`, "leader changes", "max write latency w/o fault, ms"];
  const lines = rows.map((r) => [r.etcd, r.tuning, r.load, f(r.firstWriteMs), max(r.longestGapMs), String(r.steady.elections), String(r.steady.leaderChanges), String(r.steady.maxLatencyMs)]);
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...lines.map((l) => `| ${l.join(" | ")} |`)].join("\n");
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("npm run bench:etcd needs root (network namespaces)");
  if (!BINS.length) throw new Error("no etcd binary: apt-get install etcd-server, or pass --etcd PATH");
  for (const t of ["ip", "openssl"]) if (spawnSync("bash", ["-c", `command -v ${t}`]).status !== 0) throw new Error(`${t} is not installed`);
  const started = new Date();
  created.base = fs.mkdtempSync("/var/tmp/hakube-etcd-bench-");
  setupBridge();
  const addrs = BINS.flatMap((_, b) => TUNINGS.flatMap((__, t) => [1, 2, 3].map((m) => `${SUBNET}.${(b * TUNINGS.length + t + 1) * 10 + m}`)));
  const pkiDir = path.join(created.base, "pki");
  fs.mkdirSync(pkiDir);
  const tls = makePki(pkiDir, addrs);
  const rows: Row[] = [];
  const load0 = os.loadavg()[0].toFixed(1);
  try {
    for (const [b, bin] of BINS.entries()) {
      const version = etcdVersion(bin);
      const clusters = TUNINGS.map((t, i) => new Cluster(bin, t, b * TUNINGS.length + i + 1, created.base, pkiDir, tls));
      for (const c of clusters) c.startAll();
      await Promise.all(clusters.map((c) => c.waitLeader()));
      for (const load of LOADS) {
        const hog = load === "loaded" ? startHog(WINDOW_S + TUNINGS.length * TRIALS * 40 + 60) : [];
        if (hog.length) await sleep(3000);
        console.error(`[${new Date().toISOString()}] etcd ${version} ${load}: ${WINDOW_S} s without fault (load average ${os.loadavg()[0].toFixed(1)})`);
        const st = await steady(clusters, WINDOW_S);
        for (const [i, c] of clusters.entries())
          console.error(`  ${version} ${tuningLabel(c.tuning)} ${load}: ${st[i].elections} elections (raft term ${st[i].terms[0]} → ${st[i].terms[1]}), ${st[i].leaderChanges} leader changes, slowest write ${st[i].maxLatencyMs} ms, ${st[i].failedWrites} failed writes in ${WINDOW_S} s`);
        for (const [i, c] of clusters.entries()) {
          const row: Row = { etcd: version, tuning: tuningLabel(c.tuning), load, firstWriteMs: [], longestGapMs: [], steady: st[i] };
          for (let t = 0; t < TRIALS; t++) {
            const r = await failover(c);
            row.firstWriteMs.push(r.firstWriteAfterMs);
            row.longestGapMs.push(r.longestGapMs);
            console.error(`  ${version} ${row.tuning} ${load} trial ${t + 1}: first write ${r.firstWriteAfterMs} ms, longest gap ${r.longestGapMs} ms, raft term ${r.terms[0]} → ${r.terms[1]} (${r.failed}/${r.sent} writes failed; load average ${os.loadavg()[0].toFixed(1)})`);
          }
          rows.push(row);
        }
        await stopHog(hog);
      }
      for (const c of clusters) c.stop();
      await sleep(500);
      for (const c of clusters) for (const m of c.members) {
        sh("ip", ["netns", "del", m.ns], true);
        created.netns = created.netns.filter((n) => n !== m.ns);
      }
    }
  } finally {
    cleanup();
  }
  const cpu = os.cpus()[0]?.model ?? "?";
  console.log(
    `\netcd leader failover (hakube bench:etcd), ${started.toISOString()}; ${CORES} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB; load average at start ${load0}\n` +
      `3 members in network namespaces on one bridge, mutual TLS, data on disk; writes every ${INTERVAL_MS} ms through a surviving member (2 s deadline); ` +
      `leader power cut = link down + SIGKILL; loaded = stress-ng --cpu ${2 * CORES}; ${TRIALS} trials each\n\n` +
      table(rows),
  );
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ started, cores: CORES, cpu, interval: INTERVAL_MS, window: WINDOW_S, rows }, null, 2));
}

main().catch((e) => {
  cleanup();
  console.error(`bench:etcd: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
