/**
 * Driving the lab from TypeScript: `lab.sh` commands, the hosts' state, commands inside a host
 * (over SSH with the lab key and verified host keys, or through its namespaces), who holds the
 * VIP, a TCP prober and a small etcd client. Used by the end-to-end suite and the benchmark.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { sshExec, type ExecResult, type SshTarget } from "../harness/ssh";
import { pbBytes, pbBytesFields } from "../harness/protobuf";

export const LAB_DIR = process.env.HAKUBE_LAB_DIR ?? "/var/lib/hakube-lab";
export const LAB_SH = path.join(__dirname, "lab.sh");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.now();

export interface LabRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run `lab.sh ARGS` (async, so probes keep running meanwhile). Rejects when it fails, unless `allowFail`. */
export function labRun(args: string[], o: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<LabRun> {
  const t0 = now();
  return new Promise((resolve, reject) => {
    execFile("bash", [LAB_SH, ...args], { timeout: o.timeoutMs ?? 600_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
      const r = { code, stdout: String(stdout), stderr: String(stderr), ms: now() - t0 };
      if (code !== 0 && !o.allowFail) reject(new Error(`lab ${args.join(" ")} failed (exit ${code}):\n${r.stderr.trim().split("\n").slice(-15).join("\n")}`));
      else resolve(r);
    });
  });
}

export interface LabHost {
  name: string;
  address: string;
  roles: string[];
}
export interface Topology {
  hosts: LabHost[];
  vip: string;
}

/** The topology `lab up` recorded (run/topology.tsv). */
export function topology(labDir = LAB_DIR): Topology {
  const text = fs.readFileSync(path.join(labDir, "run", "topology.tsv"), "utf8");
  const hosts: LabHost[] = [];
  let vip = "";
  for (const line of text.split("\n")) {
    const [kind, a, b, c] = line.split("\t");
    if (kind === "host") hosts.push({ name: a, address: b, roles: c ? c.split(",") : [] });
    if (kind === "vip") vip = a;
  }
  return { hosts, vip };
}
export const withRole = (t: Topology, role: string) => t.hosts.filter((h) => h.roles.includes(role));

export interface HostStatus {
  name: string;
  running: boolean;
  notes: string;
}
export async function labStatus(): Promise<HostStatus[]> {
  const r = await labRun(["status"], { allowFail: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .slice(1)
    .filter((l) => /^\S+\s+hk-/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { name: f[0], running: f[3] === "running", notes: f.slice(5).join(" ") };
    });
}

/** Every host of the recorded topology runs, none cut off, the bridge is there. */
export async function labIsUp(): Promise<boolean> {
  if (!fs.existsSync(path.join(LAB_DIR, "run", "topology.tsv"))) return false;
  const st = await labStatus();
  return st.length > 0 && st.every((h) => h.running && !/unplugged|partitioned|no-rootfs/.test(h.notes));
}

// ---- processes of a host (this machine's view) ------------------------------------------------

function childPids(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}
function startTicks(pid: number): string | undefined {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return st.slice(st.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** PID (on this machine) of the host's PID 1 (its systemd), via the launcher pid file lab.sh keeps. */
export function pid1Of(name: string, labDir = LAB_DIR): number | undefined {
  let launcher: number, started: string;
  try {
    [launcher, started] = fs.readFileSync(path.join(labDir, "run", `${name}.pid`), "utf8").trim().split(/\s+/) as unknown as [number, string];
  } catch {
    return undefined;
  }
  if (startTicks(Number(launcher)) !== started) return undefined;
  const nspawn = childPids(Number(launcher)).find((p) => comm(p) === "systemd-nspawn");
  return nspawn ? childPids(nspawn)[0] : undefined;
}

/**
 * CPU time (ms) the host's processes have used since it booted: `cpuacct.usage` of the cgroup the
 * lab recorded for it (run/<host>.cgroups); undefined when the host is not up.
 */
export function hostCpuMs(name: string, labDir = LAB_DIR): number | undefined {
  let dirs: string[];
  try {
    dirs = fs.readFileSync(path.join(labDir, "run", `${name}.cgroups`), "utf8").split("\n").filter(Boolean);
  } catch {
    return undefined;
  }
  for (const d of dirs) {
    try {
      return Number(fs.readFileSync(path.join(d, "cpuacct.usage"), "utf8").trim()) / 1e6;
    } catch {
      // not the cpuacct hierarchy
    }
  }
  return undefined;
}

/**
 * Run ARGV in the host's network namespace with this machine's binaries (fast; works while the
 * host is cut off). Asynchronous, so probes running meanwhile keep their timing.
 */
export function inNetns(name: string, argv: string[]): Promise<string | undefined> {
  const pid = pid1Of(name);
  if (!pid) return Promise.resolve(undefined);
  return new Promise((resolve) =>
    execFile("nsenter", ["-t", String(pid), "-n", ...argv], { encoding: "utf8", timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout)),
  );
}

/** Which of these hosts carry ADDRESS on an interface (a host that is not running holds nothing). */
export async function holders(names: string[], address: string): Promise<string[]> {
  const addrs = await Promise.all(names.map((n) => inNetns(n, ["ip", "-4", "-o", "addr", "show"])));
  return names.filter((_, i) => (addrs[i] ?? "").includes(` ${address}/`));
}

// ---- SSH ---------------------------------------------------------------------------------------

export interface LabConnections {
  targets: Record<string, SshTarget>;
  privateKey: string;
}
/** SSH targets for every host from the lab's stack-config.json (root, lab key, pinned host keys). */
export function connections(labDir = LAB_DIR): LabConnections {
  const cfg = JSON.parse(fs.readFileSync(path.join(labDir, "stack-config.json"), "utf8")) as Record<string, string>;
  const hosts = JSON.parse(cfg["hakube:hosts"]) as { name: string; address: string; hostKey: string }[];
  const privateKey = cfg["hakube:sshPrivateKey"];
  const targets: Record<string, SshTarget> = {};
  for (const h of hosts) targets[h.name] = { host: h.address, port: 22, user: "root", privateKey, hostKey: h.hostKey };
  return { targets, privateKey };
}

/** Run a bash script on a host over SSH (script on the command line, optional stdin). */
export async function onHost(t: SshTarget, script: string, o: { stdin?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return sshExec(t, `bash --norc --noprofile -c ${shellQuote(script)}`, o.stdin, o.timeoutMs ?? 120_000);
}
/** `onHost` that must exit 0; returns stdout. */
export async function onHostOk(t: SshTarget, script: string, o: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await onHost(t, script, o);
  if (r.exitCode !== 0) throw new Error(`on ${t.host}: exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}\nscript: ${script.slice(0, 300)}`);
  return r.stdout;
}
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---- TCP prober ------------------------------------------------------------------------------------

export interface Attempt {
  /** performance.now() when the connect started / ended */
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

/**
 * Opens a new TCP connection to HOST:PORT every `intervalMs` (each gives up after `timeoutMs`;
 * attempts overlap), and records every attempt. A success is a completed handshake.
 */
export class TcpProber {
  readonly attempts: Attempt[] = [];
  private timer?: NodeJS.Timeout;
  private pending = new Set<Promise<void>>();
  constructor(
    readonly host: string,
    readonly port: number,
    readonly intervalMs = 20,
    readonly timeoutMs = 500,
  ) {}
  start(): this {
    const tick = () => {
      const p = this.once().then((a) => {
        this.attempts.push(a);
        this.pending.delete(p);
      });
      this.pending.add(p);
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    return this;
  }
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.pending]);
  }
  private once(): Promise<Attempt> {
    const start = now();
    return new Promise((resolve) => {
      const s = net.connect({ host: this.host, port: this.port });
      let done = false;
      const finish = (ok: boolean, error?: string) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        s.destroy();
        resolve({ start, end: now(), ok, ...(error ? { error } : {}) });
      };
      const t = setTimeout(() => finish(false, "timeout"), this.timeoutMs);
      s.once("connect", () => finish(true));
      s.once("error", (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    });
  }
  sorted(): Attempt[] {
    return [...this.attempts].sort((a, b) => a.start - b.start);
  }
  /** Last success that completed before `t`. */
  lastSuccessBefore(t: number): Attempt | undefined {
    return this.sorted().filter((a) => a.ok && a.end <= t).pop();
  }
  /** The first failed attempt started at/after `t`. */
  firstFailureAfter(t: number): Attempt | undefined {
    return this.sorted().find((a) => !a.ok && a.start >= t);
  }
  /** First success among the attempts started after the first failure (from `t` on): the recovery. */
  recoveryAfter(t: number): { firstFailure?: Attempt; recovery?: Attempt; lastGood?: Attempt } {
    const firstFailure = this.firstFailureAfter(t);
    if (!firstFailure) return {};
    const recovery = this.sorted().find((a) => a.ok && a.start >= firstFailure.start);
    return { firstFailure, recovery, lastGood: this.lastSuccessBefore(firstFailure.end) };
  }
  /**
   * The client-visible outage: the longest time between two consecutive completed connections
   * (by completion time) among the attempts started in [t0, t1], counted from the last success
   * before t0. Normal gaps are about `intervalMs`.
   */
  longestGap(t0: number, t1: number): number {
    const ends = this.attempts
      .filter((a) => a.ok && ((a.start >= t0 && a.start <= t1) || a === this.lastSuccessBefore(t0)))
      .map((a) => a.end)
      .sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < ends.length; i++) gap = Math.max(gap, ends[i] - ends[i - 1]);
    return gap;
  }
  failuresBetween(t0: number, t1: number): Attempt[] {
    return this.attempts.filter((a) => !a.ok && a.start >= t0 && a.start <= t1);
  }
}

/** Wait until `f()` is truthy (checked every `everyMs`), at most `timeoutMs`; returns the value and when it became true. */
export async function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs: number, everyMs = 50): Promise<{ value: NonNullable<T>; at: number }> {
  const end = now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return { value: v as NonNullable<T>, at: now() };
      last = v;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    if (now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${typeof last === "string" ? last : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

// ---- etcd ------------------------------------------------------------------------------------------

export interface EtcdClientCert {
  caCertPem: string;
  certPem?: string;
  keyPem?: string;
}

/** A client certificate of the program's etcd PKI from its registrations (`reg`: outputs by resource name). */
export function programEtcdCert(reg: (name: string) => Record<string, any>, client: "apiserver-etcd-client" | "healthcheck-client"): Required<EtcdClientCert> {
  return { caCertPem: reg("pki-etcd-ca-cert").certPem, certPem: reg(`etcd-${client}-cert`).certPem, keyPem: reg(`etcd-${client}-key`).privateKeyPem };
}

/** Client credentials written to a private temp directory (for etcdctl); `dispose()` removes it. */
export class EtcdCreds {
  readonly dir: string;
  constructor(readonly c: EtcdClientCert) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-e2e-etcd-"));
    fs.chmodSync(this.dir, 0o700);
    fs.writeFileSync(path.join(this.dir, "ca.crt"), c.caCertPem);
    if (c.certPem) fs.writeFileSync(path.join(this.dir, "client.crt"), c.certPem);
    if (c.keyPem) fs.writeFileSync(path.join(this.dir, "client.key"), c.keyPem, { mode: 0o600 });
  }
  /** etcdctl flags: CA always; the client certificate unless `anonymous`. */
  flags(anonymous = false): string[] {
    return [
      `--cacert=${path.join(this.dir, "ca.crt")}`,
      ...(anonymous || !this.c.certPem ? [] : [`--cert=${path.join(this.dir, "client.crt")}`, `--key=${path.join(this.dir, "client.key")}`]),
    ];
  }
  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `etcdctl` (v3 API) on this machine. */
export function etcdctl(creds: EtcdCreds, endpoints: string[], args: string[], o: { anonymous?: boolean; timeoutS?: number } = {}): ExecResult {
  const t = o.timeoutS ?? 5;
  const r = spawnSync(
    "etcdctl",
    [`--endpoints=${endpoints.join(",")}`, ...creds.flags(o.anonymous), `--dial-timeout=${Math.min(t, 3)}s`, `--command-timeout=${t}s`, ...args],
    { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, timeout: (t + 5) * 1000 },
  );
  return { exitCode: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

export interface EtcdEndpointStatus {
  endpoint: string;
  memberId: string;
  leader: string;
  clusterId: string;
}
/** `etcdctl endpoint status` of every endpoint (IDs are uint64: kept as strings). */
export function etcdStatus(creds: EtcdCreds, endpoints: string[]): EtcdEndpointStatus[] {
  const r = etcdctl(creds, endpoints, ["endpoint", "status", "-w", "json"]);
  if (r.exitCode !== 0) throw new Error(`etcdctl endpoint status: exit ${r.exitCode}: ${r.stderr.trim().slice(-500)}`);
  let parsed: { Endpoint: string; Status: { header: { member_id: string; cluster_id: string }; leader: string } }[];
  try {
    parsed = JSON.parse(r.stdout.replace(/([:\[,]\s*)(\d{15,})/g, '$1"$2"'));
  } catch (e) {
    throw new Error(`etcdctl endpoint status: ${(e as Error).message}: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`);
  }
  return parsed.map((x) => ({ endpoint: x.Endpoint, memberId: String(x.Status.header.member_id), leader: String(x.Status.leader), clusterId: String(x.Status.header.cluster_id) }));
}

/**
 * The endpoint of a fault's victim from etcd's own status: the leader's, or (`follower`) the last
 * follower's in endpoint order.
 */
export function etcdMemberEndpoint(creds: EtcdCreds, endpoints: string[], role: "leader" | "follower"): string {
  const leaderEp = etcdStatus(creds, endpoints).find((x) => x.memberId === x.leader)!.endpoint;
  return role === "leader" ? leaderEp : [...endpoints].reverse().find((e) => e !== leaderEp)!;
}

/** The lab host serving an etcd endpoint (`https://<address>:2379`). */
export function etcdHostOf(topo: Topology, endpoint: string): string {
  return withRole(topo, "etcd").find((h) => endpoint.includes(`//${h.address}:`))!.name;
}

/** Wait until every member answers `endpoint health` (at most 2 minutes). */
export function waitEtcdHealthy(creds: EtcdCreds, endpoints: string[]) {
  return waitFor("every etcd member healthy", () => etcdctl(creds, endpoints, ["endpoint", "health"], { timeoutS: 2 }).exitCode === 0, 120_000, 200);
}

/**
 * A gRPC client for etcd's KV service over one kept-alive mutual-TLS HTTP/2 connection (grpc-js,
 * which @pulumi/pulumi already brings): a write's latency without a process start or a TLS
 * handshake per write. etcd's JSON gateway is off with a config file (etcd 3.4), so no HTTP.
 * The two messages it needs are encoded by hand (protobuf: PutRequest, RangeRequest/Response).
 */
export class EtcdKv {
  private readonly client: grpc.Client;
  constructor(
    readonly endpoint: string,
    c: EtcdClientCert,
  ) {
    const u = new URL(endpoint);
    const creds = grpc.credentials.createSsl(Buffer.from(c.caCertPem), c.keyPem ? Buffer.from(c.keyPem) : null, c.certPem ? Buffer.from(c.certPem) : null);
    this.client = new grpc.Client(`${u.hostname}:${u.port}`, creds);
  }
  private call(method: string, req: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(
        `/etcdserverpb.KV/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(new Error(`${method}: ${err.message}`)) : resolve(res!)),
      ),
    );
  }
  /** Put; resolves with the round trip in ms. */
  async put(key: string, value: string, timeoutMs = 3000): Promise<number> {
    const t0 = now();
    await this.call("Put", Buffer.concat([pbBytes(1, key), pbBytes(2, value)]), timeoutMs);
    return now() - t0;
  }
  /** Serializable read: this member's own copy, no round trip to the leader. */
  async getLocal(key: string, timeoutMs = 3000): Promise<string | undefined> {
    const res = await this.call("Range", Buffer.concat([pbBytes(1, key), Buffer.from([7 << 3, 1])]), timeoutMs);
    const kv = pbBytesFields(res).find((f) => f.field === 2);
    const value = kv && pbBytesFields(kv.data).find((f) => f.field === 5);
    return value ? value.data.toString("utf8") : kv ? "" : undefined;
  }
  close(): void {
    this.client.close();
  }
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
export const round = (ms: number) => Math.round(ms);

/** True when this machine can run the lab (root, lab tools). */
export function labPrerequisites(): string | undefined {
  if (process.getuid?.() !== 0) return "the lab suite needs root (systemd-nspawn, a bridge, nftables)";
  for (const t of ["systemd-nspawn", "nft", "nsenter", "etcdctl"]) {
    try {
      execFileSync("bash", ["-c", `command -v ${t}`], { stdio: "ignore" });
    } catch {
      return `${t} is not installed (test/lab/global-setup.ts should have installed it: see the start of the run and $HAKUBE_LAB_DIR/logs/apt.log)`;
    }
  }
  return undefined;
}

// ---- VIP address events -------------------------------------------------------------------------

/**
 * Follows which hosts carry ADDRESS from the kernel's own address events (`ip -o monitor address`
 * in each host's network namespace): no polling, so nothing is missed between samples even when
 * the machine is too busy to poll every 100 ms. `holders()` is the current set (in-process, no fork).
 */
export class VipWatch {
  private procs: ChildProcess[] = [];
  private state = new Map<string, boolean>();
  readonly events: { at: number; host: string; present: boolean }[] = [];
  constructor(
    readonly names: string[],
    readonly address: string,
  ) {}
  async start(): Promise<this> {
    for (const n of this.names) {
      const pid = pid1Of(n);
      if (!pid) throw new Error(`VipWatch: ${n} is not running`);
      const p = spawn("nsenter", ["-t", String(pid), "-n", "ip", "-o", "-4", "monitor", "address"], { stdio: ["ignore", "pipe", "ignore"] });
      let buf = "";
      p.stdout!.setEncoding("utf8");
      p.stdout!.on("data", (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line.includes(` ${this.address}/`)) continue;
          const present = !line.startsWith("Deleted");
          this.state.set(n, present);
          this.events.push({ at: now(), host: n, present });
        }
      });
      this.procs.push(p);
    }
    await sleep(300); // the monitors are subscribed
    const h = await holders(this.names, this.address);
    for (const n of this.names) this.state.set(n, h.includes(n));
    return this;
  }
  holders(): string[] {
    return this.names.filter((n) => this.state.get(n));
  }
  /** Whether every monitor is still running (one that died would freeze its host's state). */
  alive(): boolean {
    return this.procs.every((p) => p.exitCode === null && p.signalCode === null);
  }
  stop(): void {
    for (const p of this.procs) if (p.pid && p.exitCode === null) p.kill("SIGKILL");
    this.procs = [];
  }
}
