/**
 * The lab's Kubernetes end-to-end test (`npm run test:lab`, root): fresh lab hosts, the whole `dev`
 * stack deployed through the realizing harness with **every** component's commands run for real
 * over SSH (node preparation from the site's mirrors, kubeadm init, control-plane joins one at a
 * time, workers in parallel, flannel), then the cluster used from outside the hosts with the
 * exported kubeconfig through the VIP (TLS verified against the exported CA), then faults under a
 * client that calls the API every 100 ms and writes a ConfigMap every second.
 *
 * The real Pulumi engine cannot run the program here (the proxy serves no provider plugin: see
 * docs/airgap.md); the harness registers the same resources and runs the same command texts.
 * Environment: HAKUBE_LAB_KEEP=1 leaves the cluster up at the end.
 */
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOKENS, type Registration } from "../harness/mocks";
import { readStackFile, runProgram } from "../harness/program";
import { CHANGE_LINE, rerunAll } from "./checks";
import { deployLab, deployReport, destroyLab, workerPoolStack, writeOutputs, type LabDeployResult, type LabDestroyResult } from "./deploy";
import { etcdClusterChecks, etcdCrashTests } from "./etcd-checks";
import {
  connections,
  EtcdCreds,
  etcdctl,
  etcdHostOf,
  etcdMemberEndpoint,
  holders,
  LAB_DIR,
  labPrerequisites,
  labRun,
  now,
  onHost,
  onHostOk,
  pid1Of,
  programEtcdCert,
  round,
  sleep,
  topology,
  waitEtcdHealthy,
  waitFor,
  withRole,
  type Topology,
} from "./labctl";
import { LabReport } from "./report";
import { LB_HEALTH_PORT } from "../../components/config/defaults";
import { KUBEADM_PATHS } from "../../components/etcd/kubeadm";
import { DEFAULT_PATHS as ETCD_SYSTEMD_PATHS } from "../../components/etcd/render";
import type { SshTarget } from "../harness/ssh";

const KEEP = process.env.HAKUBE_LAB_KEEP === "1";
/** How the cluster's etcd runs (hakube:etcd.deployment): kubeadm here (the etcd/LB suites cover systemd); HAKUBE_LAB_ETCD_DEPLOYMENT=systemd to compare. */
const ETCD_DEPLOYMENT = process.env.HAKUBE_LAB_ETCD_DEPLOYMENT ?? "kubeadm";
if (ETCD_DEPLOYMENT !== "kubeadm" && ETCD_DEPLOYMENT !== "systemd") throw new Error(`HAKUBE_LAB_ETCD_DEPLOYMENT=${ETCD_DEPLOYMENT}: systemd or kubeadm`);
/** The dev stack with etcd.deployment set: every deploy of this file uses it. */
const OVERRIDES = { "hakube:etcd": { ...(readStackFile("Pulumi.dev.yaml")["hakube:etcd"] as Record<string, unknown>), deployment: ETCD_DEPLOYMENT } };
const ALL_COMPONENTS = ["hosts", "pki", "etcd", "lb", "controlplane", "workers"];
const TOOLCHAIN = spawnSync("bash", [path.join(__dirname, "toolchain", "build.sh"), "--path"], { encoding: "utf8" }).stdout.trim();
const KUBECTL = path.join(TOOLCHAIN, "bin", "kubectl");
const KUBECONFIG = path.join(LAB_DIR, "kubeconfig");
const NS = "hakube-e2e";
const TEST_IMAGE = "10.123.0.1:5000/hakube-lab/http-server:1.0";

/** kubectl on this machine with the exported kubeconfig (through the VIP). */
function kubectl(args: string[], o: { stdin?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(KUBECTL, ["--kubeconfig", KUBECONFIG, "--request-timeout=20s", ...args], { timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
    if (o.stdin !== undefined) c.stdin!.end(o.stdin);
  });
}
async function kubectlOk(args: string[], o: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await kubectl(args, o);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
async function kjson(args: string[]): Promise<any> {
  return JSON.parse(await kubectlOk([...args, "-o", "json"]));
}
/** Wait (3 min) until the node's Ready condition is True. */
async function nodeReady(name: string): Promise<void> {
  await waitFor(`${name} Ready`, async () => {
    const n = await kjson(["get", "node", name]).catch(() => undefined);
    return n?.status.conditions.some((c: any) => c.type === "Ready" && c.status === "True") ? true : undefined;
  }, 180_000, 2000);
}

interface Call {
  kind: "read" | "write";
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

/**
 * The API client of the fault tests: `GET /readyz` through the VIP every 100 ms and a ConfigMap
 * merge-patch every second, each a new TLS connection verified against the cluster CA, with the
 * admin client certificate; every call recorded.
 */
class ApiClient {
  readonly calls: Call[] = [];
  private timers: NodeJS.Timeout[] = [];
  private pending = new Set<Promise<void>>();
  private seq = 0;
  constructor(private readonly kc: { server: URL; ca: string; cert: string; key: string }) {}
  private request(kind: Call["kind"], method: string, p: string, body?: string): void {
    const start = now();
    const done = new Promise<void>((resolve) => {
      const finish = (ok: boolean, error?: string) => {
        this.calls.push({ kind, start, end: now(), ok, error });
        resolve();
      };
      const req = https.request(
        {
          host: this.kc.server.hostname,
          port: Number(this.kc.server.port || 443),
          path: p,
          method,
          ca: this.kc.ca,
          cert: this.kc.cert,
          key: this.kc.key,
          agent: false,
          timeout: 2000,
          headers: body ? { "content-type": "application/merge-patch+json", "content-length": Buffer.byteLength(body) } : {},
        },
        (res) => {
          res.resume();
          res.on("end", () => finish(res.statusCode === 200, res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
          res.on("error", (e) => finish(false, e.message));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => finish(false, (e as NodeJS.ErrnoException).code ?? e.message));
      req.end(body);
    });
    this.pending.add(done);
    void done.then(() => this.pending.delete(done));
  }
  start(): this {
    this.timers.push(setInterval(() => this.request("read", "GET", "/readyz"), 100));
    this.timers.push(
      setInterval(() => this.request("write", "PATCH", `/api/v1/namespaces/${NS}/configmaps/probe`, JSON.stringify({ data: { seq: String(++this.seq) } })), 1000),
    );
    return this;
  }
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all([...this.pending]);
  }
  between(kind: Call["kind"], from: number, to = Infinity): Call[] {
    return this.calls.filter((c) => c.kind === kind && c.start >= from && c.start <= to);
  }
  failed(kind: Call["kind"], from: number, to = Infinity): Call[] {
    return this.between(kind, from, to).filter((c) => !c.ok);
  }
  /** Longest time without a successful answer of this kind, from `from` (ms between answers). */
  longestGap(kind: Call["kind"], from: number, to = now()): number {
    const ends = this.calls.filter((c) => c.kind === kind && c.ok && c.end >= from && c.end <= to).map((c) => c.end).sort((a, b) => a - b);
    let gap = 0;
    let last = from;
    for (const e of ends) {
      gap = Math.max(gap, e - last);
      last = e;
    }
    return Math.max(gap, to - last);
  }
  summary(from: number, to = now()) {
    const f = (k: Call["kind"]) => this.failed(k, from, to);
    return {
      reads: this.between("read", from, to).length,
      failedReads: f("read").length,
      longestReadGapMs: round(this.longestGap("read", from, to)),
      writes: this.between("write", from, to).length,
      failedWrites: f("write").length,
      failureKinds: [...new Set([...f("read"), ...f("write")].map((c) => c.error))],
    };
  }
}

/** Crash a lab host (SIGKILL of its PID 1), run `f` with the time of the crash command, then start the host again. */
async function whileCrashed<T>(victim: string, f: (t0: number) => Promise<T>): Promise<T> {
  const t0 = now();
  try {
    await labRun(["crash", victim]);
    return await f(t0);
  } finally {
    if (!pid1Of(victim)) await labRun(["start", victim], { allowFail: true });
  }
}

/** HAProxy's view of the API servers on a load balancer: server → status (UP, DOWN, …) from its stats CSV. */
async function haproxyServers(t: SshTarget, backend: string): Promise<Record<string, string>> {
  const csv = await onHostOk(t, `curl -fsS 'http://127.0.0.1:${LB_HEALTH_PORT}/stats;csv'`, { timeoutMs: 10_000 });
  const out: Record<string, string> = {};
  for (const line of csv.split("\n")) {
    const f = line.split(",");
    if (f[0] === backend && f[1] !== "BACKEND" && f[1] !== "FRONTEND") out[f[1]] = f[17];
  }
  return out;
}

describe(`lab Kubernetes end to end (haproxy, etcd.deployment ${ETCD_DEPLOYMENT}): every command run, the cluster used, faults measured`, () => {
  const missing = labPrerequisites() ?? (fs.existsSync(KUBECTL) ? undefined : `no ${KUBECTL}: build the lab's toolchain (sudo npm run lab -- toolchain)`);
  if (missing !== undefined) {
    it(`cannot run: ${missing}`, () => {
      throw new Error(`npm run test:lab cannot run the cluster test: ${missing}`);
    });
    return;
  }
  const report = new LabReport("cluster");
  let d: LabDeployResult;
  let topo: Topology;
  let targets: Record<string, SshTarget>;
  let outputs: Record<string, any>;
  let regs: Registration[];
  let api: ApiClient;
  let workers: string[];
  let cps: string[];
  let lbs: string[];
  const faults: Record<string, unknown> = {};
  const figure = (k: string, v: unknown) => {
    faults[k] = v;
    report.set("faults", faults, false);
    console.log(`[lab cluster] fault ${k}: ${JSON.stringify(v)}`);
  };
  const reg = (name: string) => {
    const r = regs.find((x) => x.name === name);
    if (!r?.outputs) throw new Error(`no registration ${name} with outputs`);
    return r.outputs;
  };

  beforeAll(async () => {
    // Kubernetes hosts keep their fsyncs (etcd and the kubelet's state survive a host crash as on a machine)
    process.env.HAKUBE_LAB_SUPPRESS_SYNC = "0";
    const down = await labRun(["down"]);
    const up = await labRun(["up"]);
    report.set("lab", { downMs: round(down.ms), upMs: round(up.ms) });
    topo = topology();
    ({ targets } = connections());
    workers = withRole(topo, "worker").map((h) => h.name);
    cps = withRole(topo, "controlplane").map((h) => h.name);
    lbs = withRole(topo, "loadbalancer").map((h) => h.name);
    const log: string[] = [];
    d = await deployLab({ components: ALL_COMPONENTS, statePath: false, fresh: true, overrides: OVERRIDES, evaluate: runProgram, log: (l) => log.push(l) });
    outputs = await writeOutputs(d.result);
    regs = d.result.harness.registrations;
    report.set("deploy", deployReport(d, ALL_COMPONENTS));
  }, 25 * 60_000);

  afterAll(async () => {
    await api?.stop();
    const file = report.write();
    console.log(`[lab cluster] report: ${file}`);
    if (KEEP) console.log(`[lab cluster] HAKUBE_LAB_KEEP=1: the cluster stays up (kubectl --kubeconfig ${KUBECONFIG})`);
    else await labRun(["down"]);
  }, 5 * 60_000);

  it("runs every command of every component for real (all exit 0): nothing is recorded only", () => {
    const commands = d.result.harness.ofType(TOKENS.command).map((r) => r.name);
    const byName = new Map(d.executions.map((e) => [e.name, e]));
    for (const n of commands) {
      const e = byName.get(n);
      expect(e, `${n} was handed to the executor`).toBeDefined();
      expect(e!.skipped, `${n} runs`).toBe(false);
      expect(e!.exitCode, n).toBe(0);
    }
    for (const c of ["hosts", "etcd", "lb", "controlplane", "workers"]) expect(new Set(d.executions.map((e) => e.component)), c).toContain(c);
    for (const n of ["controlplane-kubeadm-cp1", "controlplane-kubeadm-cp2", "controlplane-kubeadm-cp3", "controlplane-cni-cp1"]) expect(byName.get(n)?.exitCode, n).toBe(0);
    // control-plane joins one at a time (each starts after the one before ended); workers overlap
    const span = (n: string) => [byName.get(n)!.startMs, byName.get(n)!.endMs];
    expect(span("controlplane-kubeadm-cp2")[0]).toBeGreaterThanOrEqual(span("controlplane-kubeadm-cp1")[1]);
    expect(span("controlplane-kubeadm-cp3")[0]).toBeGreaterThanOrEqual(span("controlplane-kubeadm-cp2")[1]);
    const joins = d.executions.filter((e) => /^workers-join-/.test(e.name));
    expect(joins.length).toBe(workers.length);
    expect(Math.max(...joins.map((j) => j.startMs))).toBeLessThan(Math.min(...joins.map((j) => j.endMs)));
  });

  it("the exported kubeconfig reaches the API through the VIP, TLS verified against the exported CA", async () => {
    const kc = parse(String(outputs.kubeconfig));
    const server = new URL(kc.clusters[0].cluster.server);
    expect(server.hostname).toBe(topo.vip);
    expect(Buffer.from(kc.clusters[0].cluster["certificate-authority-data"], "base64").toString()).toBe(reg("pki-kubernetes-ca-cert").certPem);
    expect(kc.clusters[0].cluster["insecure-skip-tls-verify"]).toBeUndefined();
    const v = JSON.parse(await kubectlOk(["version", "-o", "json"]));
    expect(v.serverVersion.gitVersion).toMatch(/^v1\.37\./);
  });

  it("3 control-plane nodes and 2 workers Ready, with the configured labels and taints", async () => {
    const t0 = now();
    const ready = await waitFor(
      "every node Ready",
      async () => {
        const nodes = (await kjson(["get", "nodes"]).catch(() => ({ items: [] }))).items as any[];
        const isReady = (n: any) => n.status.conditions.some((c: any) => c.type === "Ready" && c.status === "True");
        return nodes.length === cps.length + workers.length && nodes.every(isReady) ? nodes : undefined;
      },
      5 * 60_000,
      2000,
    );
    const nodes = ready.value;
    const byName = Object.fromEntries(nodes.map((n: any) => [n.metadata.name, n]));
    expect(Object.keys(byName).sort()).toEqual([...cps, ...workers].sort());
    for (const c of cps) {
      expect(byName[c].metadata.labels).toHaveProperty("node-role.kubernetes.io/control-plane");
      expect(byName[c].spec.taints).toContainEqual({ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" });
    }
    const stackHosts = d.config["hakube:hosts"] as { name: string; labels?: Record<string, string> }[];
    for (const w of workers) {
      for (const [k, v] of Object.entries(stackHosts.find((h) => h.name === w)!.labels ?? {})) expect(byName[w].metadata.labels[k], `${w} ${k}`).toBe(v);
      expect(byName[w].spec.taints ?? []).toEqual([]);
      expect(byName[w].status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/2\./);
      expect(byName[w].status.nodeInfo.kubeletVersion).toMatch(/^v1\.37\./);
    }
    report.set("nodes", { readyAfterDeployMs: round(ready.at - t0), count: nodes.length });
  }, 6 * 60_000);

  it("all three API servers are UP in HAProxy's TLS-verified /readyz checks on both load balancers", async () => {
    for (const lb of lbs) {
      const s = await waitFor(`${lb}: every API server UP`, async () => {
        const st = await haproxyServers(targets[lb], "kube-apiserver");
        return Object.keys(st).length === cps.length && Object.values(st).every((x) => x === "UP") ? st : undefined;
      }, 60_000, 1000);
      expect(Object.keys(s.value).sort()).toEqual([...cps].sort());
    }
  }, 3 * 60_000);

  it("etcd holds the cluster's /registry keys, read through the external endpoints with the apiserver-etcd-client certificate", () => {
    const creds = new EtcdCreds(programEtcdCert(reg, "apiserver-etcd-client"));
    try {
      const r = etcdctl(creds, outputs.etcdEndpoints as string[], ["get", "/registry/", "--prefix", "--keys-only"], { timeoutS: 10 });
      expect(r.exitCode, r.stderr).toBe(0);
      const keys = r.stdout.split("\n").filter(Boolean);
      for (const k of ["/registry/namespaces/kube-system", "/registry/namespaces/kube-flannel"]) expect(keys).toContain(k);
      for (const c of cps) expect(keys.some((k) => k === `/registry/minions/${c}`), `node ${c} in etcd`).toBe(true);
      report.set("etcdRegistryKeys", keys.length);
    } finally {
      creds.dispose();
    }
  });

  describe(`etcd (deployment ${ETCD_DEPLOYMENT}): the etcd suites' assertions on the cluster's own etcd`, () => {
    const etcdNames = () => withRole(topo, "etcd").map((h) => h.name);
    const ctx = () => ({ endpoints: outputs.etcdEndpoints as string[], etcdNames: etcdNames(), topo, reg, report, figure, targets });
    /** The etcd process on each member host, and (kubeadm) its container and the kubelet's PID. */
    const processes = async () =>
      Object.fromEntries(
        await Promise.all(
          etcdNames().map(async (n) => [n, (await onHostOk(targets[n], "echo etcd=$(pgrep -xo etcd) container=$(crictl ps --name '^etcd$' --state running -q 2>/dev/null) kubelet=$(systemctl show -p MainPID --value kubelet 2>/dev/null)")).trim()] as const),
        ),
      );

    if (ETCD_DEPLOYMENT === "kubeadm")
      it("each member is kubeadm's static pod of the site's etcd image under a standalone kubelet: no etcd.service, no kubeconfig, not a node", async () => {
        const k = d.config["hakube:kubernetes"] as { imageRepository: string };
        const e = d.config["hakube:etcd"] as { version: string };
        for (const n of etcdNames()) {
          const out = await onHostOk(
            targets[n],
            `grep -c -F -x '    image: ${k.imageRepository}/etcd:${e.version}-0' /etc/kubernetes/manifests/etcd.yaml || true
crictl ps --name '^etcd$' --state running -q | wc -l
systemctl is-active kubelet || true
systemctl is-active etcd || true
test -e /etc/kubernetes/kubelet.conf && echo kubeconfig || echo no-kubeconfig
stat -c %a /etc/kubernetes/pki/etcd/server.key /etc/kubernetes/pki/etcd/peer.key /etc/kubernetes/hakube/etcd-kubeadm.yaml /etc/kubernetes/manifests/etcd.yaml | paste -sd' '
cat /var/lib/hakube/etcd/deployment`,
          );
          expect(out.trim().split("\n"), n).toEqual(["1", "1", "active", "inactive", "no-kubeconfig", "600 600 600 600", "kubeadm"]);
        }
      });

    etcdClusterChecks(ctx);

    it("idempotency: every etcd command run again exits 0 and changes nothing; no process is restarted", async () => {
      const before = await processes();
      const reruns = await rerunAll(d.executions.filter((e) => e.component === "etcd"));
      const after = await processes();
      report.set("etcdIdempotency", { reruns: reruns.length, maxMs: round(Math.max(...reruns.map((r) => r.ms))), printed: reruns.map((r) => `${r.name}: ${r.stdout.trim().split("\n").pop()}`) });
      expect(reruns.length).toBe(d.executions.filter((e) => e.component === "etcd" && !e.skipped).length);
      expect(reruns.filter((r) => r.exitCode !== 0).map((r) => `${r.name}: exit ${r.exitCode}: ${r.stderr.trim().slice(-400)}`)).toEqual([]);
      expect(reruns.filter((r) => CHANGE_LINE.test(r.stdout)).map((r) => `${r.name}: ${r.stdout.trim()}`)).toEqual([]);
      expect(after).toEqual(before);
      for (const [n, p] of Object.entries(before)) expect(p, n).toMatch(/^etcd=\d+ /);
    }, 10 * 60_000);

    etcdCrashTests(ctx, ETCD_DEPLOYMENT === "kubeadm" ? "process" : "host");
  });

  describe("workloads", () => {
    const manifest = () => `
apiVersion: v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: probe, namespace: ${NS} }
data: { seq: "0" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: ${NS} }
spec:
  replicas: 4
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      nodeSelector: { hakube.dev/pool: general }
      topologySpreadConstraints:
        # Honor: a crashed (tainted) worker is no domain to spread over, so its pods can move
        - { maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: { matchLabels: { app: web } } }
      # a crashed worker's pods move within seconds of its node going NotReady (default: 5 minutes)
      tolerations:
        - { key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5 }
        - { key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5 }
      containers:
        - name: web
          image: ${TEST_IMAGE}
          ports: [{ containerPort: 8080 }]
          readinessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  type: NodePort
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }]
`;
    const pods = async () => ((await kjson(["-n", NS, "get", "pods", "-l", "app=web"])).items as any[]).filter((p) => !p.metadata.deletionTimestamp);
    const readyPods = async () => (await pods()).filter((p) => p.status.conditions?.some((c: any) => c.type === "Ready" && c.status === "True"));
    const exec = (pod: string, url: string) => kubectl(["-n", NS, "exec", pod, "--", "/http-server", "get", url]);

    beforeAll(async () => {
      await kubectlOk(["apply", "--server-side", "-f", "-"], { stdin: manifest() });
      await waitFor("4 web pods Ready", async () => ((await readyPods()).length === 4 ? true : undefined), 5 * 60_000, 2000);
    }, 6 * 60_000);

    it("the test image's Deployment runs on the workers only, spread over both", async () => {
      const nodes = (await readyPods()).map((p) => p.spec.nodeName);
      expect(new Set(nodes)).toEqual(new Set(workers));
    });

    it("pods on different nodes reach each other (flannel's vxlan overlay)", async () => {
      const ps = await readyPods();
      const a = ps.find((p) => p.spec.nodeName === workers[0])!;
      const b = ps.find((p) => p.spec.nodeName === workers[1])!;
      const r = await exec(a.metadata.name, `http://${b.status.podIP}:8080/from-${a.metadata.name}`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(`hakube-http-server ${b.metadata.name} /from-${a.metadata.name}`);
    });

    it("a Service name resolves from a pod (CoreDNS) and answers", async () => {
      const [a] = await readyPods();
      for (const name of ["web", `web.${NS}`, `web.${NS}.svc.cluster.local`]) {
        const r = await exec(a.metadata.name, `http://${name}/dns`);
        expect(r.code, `${name}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toMatch(/^hakube-http-server web-[a-z0-9-]+ \/dns$/m);
      }
      const k8s = await exec(a.metadata.name, "http://kubernetes.default.svc.cluster.local:443/");
      expect(k8s.stderr, "the kubernetes Service name resolves (a TLS port: HTTP fails, DNS does not)").not.toMatch(/no such host/);
    });

    it("the NodePort Service answers through the load-balancer pair's ingress frontend on the VIP (VIP:80 → workers:30080)", async () => {
      // HAProxy's L4 checks of the NodePort (downinter 5 s, rise 2) bring the workers UP within ~10 s of the Service
      const [holder] = await holders(lbs, topo.vip);
      const up = await waitFor("both workers UP in the ingress backend", async () => {
        const st = await haproxyServers(targets[holder], "ingress-http");
        return Object.keys(st).length === workers.length && Object.values(st).every((x) => x === "UP") ? st : undefined;
      }, 60_000, 500);
      expect(Object.keys(up.value).sort()).toEqual([...workers].sort());
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const r = spawnSync("curl", ["-fsS", "--max-time", "5", `http://${topo.vip}/ingress`], { encoding: "utf8" });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.trim()).toMatch(/^hakube-http-server web-[a-z0-9-]+ \/ingress$/);
        seen.add(r.stdout.split(" ")[1]);
      }
      expect(seen.size, "answers from more than one pod").toBeGreaterThan(1);
    });

    it("a second deploy with the same config runs nothing (as an unchanged `pulumi up`)", async () => {
      const again = await deployLab({ components: ALL_COMPONENTS, statePath: false, state: d.state, ran: d.ran, overrides: OVERRIDES, evaluate: runProgram, log: () => undefined });
      report.set("unchangedDeploy", { executed: again.figures.executed, unchanged: again.figures.unchanged });
      expect(again.figures.executed).toBe(0);
      expect(again.figures.unchanged).toBe(d.figures.executed);
    }, 5 * 60_000);

    describe("faults, with a client calling the API through the VIP every 100 ms (and a write every second)", () => {
      beforeAll(async () => {
        const kc = parse(fs.readFileSync(KUBECONFIG, "utf8"));
        const b64 = (s: string) => Buffer.from(s, "base64").toString();
        api = new ApiClient({
          server: new URL(kc.clusters[0].cluster.server),
          ca: b64(kc.clusters[0].cluster["certificate-authority-data"]),
          cert: b64(kc.users[0].user["client-certificate-data"]),
          key: b64(kc.users[0].user["client-key-data"]),
        }).start();
        await sleep(3000);
        expect(api.summary(0), "calls before any fault").toMatchObject({ failedReads: 0, failedWrites: 0 });
      });

      it("crash of the VIP holder: answers again within 5 s (goal 1 s); 0 failed writes after that", async () => {
        const [holder] = await holders(lbs, topo.vip);
        const other = lbs.find((l) => l !== holder)!;
        const t0 = now();
        try {
          await labRun(["crash", holder]);
          const moved = await waitFor(`VIP on ${other}`, async () => ((await holders([other], topo.vip)).length === 1 ? true : undefined), 15_000, 20);
          const back = await waitFor("a successful /readyz after the crash", () => api.calls.find((c) => c.kind === "read" && c.ok && c.start > moved.at) ?? undefined, 15_000, 20);
          await sleep(5000);
          const fig = { holder, vipMovedAfterCrashMs: round(moved.at - t0), answersAgainAfterCrashMs: round(back.value.end - t0), ...api.summary(t0), writesFailedAfterRecovery: api.failed("write", back.value.end).length };
          figure("vipHolderCrash", fig);
          expect(fig.longestReadGapMs).toBeLessThan(5000);
          expect(fig.writesFailedAfterRecovery).toBe(0);
        } finally {
          if (!pid1Of(holder)) await labRun(["start", holder], { allowFail: true });
        }
      }, 3 * 60_000);

      it("kube-apiserver stopped on one control plane: HAProxy marks it down within 5 s (goal 3 s); no failed call after the mark-down", async () => {
        const victim = cps[cps.length - 1];
        const manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml";
        const parked = "/etc/kubernetes/kube-apiserver.yaml.hakube-e2e";
        const [holder] = await holders(lbs, topo.vip);
        const t0 = now();
        try {
          await onHostOk(targets[victim], `mv ${manifest} ${parked}`);
          // the kubelet stops the static pod: /readyz fails while it drains, then its port closes
          const [stopped, down] = await Promise.all([
            waitFor(`kube-apiserver on ${victim} gone`, async () => ((await onHost(targets[victim], "ss -Hltn 'sport = :6443' | grep -q .")).exitCode !== 0 ? true : undefined), 60_000, 100),
            waitFor(`${victim} DOWN in HAProxy on ${holder}`, async () => ((await haproxyServers(targets[holder], "kube-apiserver"))[victim]?.startsWith("DOWN") ? true : undefined), 60_000, 100),
          ]);
          await sleep(10_000);
          const fig = { victim, portClosedAfterMoveMs: round(stopped.at - t0), markedDownAfterMoveMs: round(down.at - t0), markedDownAfterPortClosedMs: round(down.at - stopped.at), ...api.summary(t0), failedAfterMarkDown: api.failed("read", down.at).length + api.failed("write", down.at).length };
          figure("apiserverStopped", fig);
          expect(fig.markedDownAfterPortClosedMs).toBeLessThan(5000);
          expect(fig.failedAfterMarkDown).toBe(0);
        } finally {
          await onHost(targets[victim], `[ -f ${parked} ] && mv ${parked} ${manifest}; true`);
        }
        await waitFor(`${victim} UP again in HAProxy`, async () => ((await haproxyServers(targets[holder], "kube-apiserver"))[victim] === "UP" ? true : undefined), 120_000, 1000);
      }, 4 * 60_000);

      /**
       * An etcd host crash seen through the API. Follower and leader are crashed separately: a
       * follower's crash costs the API at most the one write in flight on a connection to it; the
       * leader's costs writes until a new leader is elected (election timeout) and the API
       * server's etcd client has moved off the dead member.
       */
      const etcdCrashThroughApi = async (role: "follower" | "leader") => {
        const endpoints = outputs.etcdEndpoints as string[];
        const creds = new EtcdCreds(programEtcdCert(reg, "apiserver-etcd-client"));
        try {
          const victim = etcdHostOf(topo, etcdMemberEndpoint(creds, endpoints, role));
          await whileCrashed(victim, async (t0) => {
            await sleep(15_000);
            const failed = api.failed("write", t0).map((c) => ({ atMs: round(c.start - t0), tookMs: round(c.end - c.start), error: c.error }));
            const fig = { victim, role, ...api.summary(t0), failedWriteTimeline: failed };
            figure(role === "leader" ? "etcdLeaderCrash" : "etcdFollowerCrash", fig);
            if (role === "follower") expect(fig.failedWrites, "at most the write in flight to the crashed member").toBeLessThanOrEqual(1);
            expect(api.failed("write", t0 + 5000).length, "no failed write 5 s after the crash").toBe(0);
          });
          // the next fault starts from a healthy etcd cluster
          await waitEtcdHealthy(creds, endpoints);
        } finally {
          creds.dispose();
        }
      };

      it("crash of an etcd follower's host: writes through the API keep succeeding (at most the one in flight fails)", () => etcdCrashThroughApi("follower"), 4 * 60_000);

      it("crash of the etcd leader's host: writes through the API succeed again within 5 s", () => etcdCrashThroughApi("leader"), 4 * 60_000);

      it("crash of one control-plane host: the API stays available through the other two", async () => {
        const victim = cps[1];
        await whileCrashed(victim, async (t0) => {
          await sleep(20_000);
          const fig = { victim, ...api.summary(t0), failedAfter5s: api.failed("read", t0 + 5000).length + api.failed("write", t0 + 5000).length };
          figure("controlPlaneCrash", fig);
          expect(fig.failedAfter5s, "no failed call 5 s after the crash").toBe(0);
        });
      }, 3 * 60_000);

      it("crash of a worker: its node goes NotReady, the Deployment's pods run elsewhere, the ingress keeps answering", async () => {
        const victim = workers[1];
        const t0 = now();
        let ingressFails = 0;
        let ingressCalls = 0;
        const probe = setInterval(() => {
          ingressCalls++;
          execFile("curl", ["-fsS", "--max-time", "2", `http://${topo.vip}/worker-crash`], (err) => {
            if (err) ingressFails++;
          });
        }, 200);
        try {
          await labRun(["crash", victim]);
          const notReady = await waitFor(`${victim} NotReady`, async () => {
            const n = await kjson(["get", "node", victim]).catch(() => undefined);
            return n?.status.conditions.some((c: any) => c.type === "Ready" && c.status !== "True") ? true : undefined;
          }, 180_000, 1000);
          const moved = await waitFor("4 Ready web pods, none on the crashed worker", async () => {
            const ps = await readyPods();
            return ps.length === 4 && ps.every((p) => p.spec.nodeName !== victim) ? true : undefined;
          }, 180_000, 1000);
          const failsBefore = ingressFails;
          const callsBefore = ingressCalls;
          await sleep(10_000);
          const fig = { victim, notReadyAfterCrashMs: round(notReady.at - t0), podsElsewhereAfterCrashMs: round(moved.at - t0), ingressCalls, ingressFails, ingressFailsAfterReschedule: ingressFails - failsBefore, ingressCallsAfterReschedule: ingressCalls - callsBefore };
          figure("workerCrash", fig);
          expect(fig.ingressFailsAfterReschedule).toBe(0);
        } finally {
          clearInterval(probe);
          if (!pid1Of(victim)) await labRun(["start", victim], { allowFail: true });
        }
        await nodeReady(victim);
      }, 8 * 60_000);
    });

    describe("lifecycle: a worker removed from the stack, then added again", () => {
      let state = () => d.state;
      let ran = () => d.ran;
      const hostsWithout = (n: string) => (d.config["hakube:hosts"] as { name: string }[]).filter((h) => h.name !== n);

      it("removing a worker runs only its delete steps (drain + delete the node, then kubeadm reset) and the load balancers' backend lists", async () => {
        const victim = workers[1];
        const r = await deployLab({ components: ALL_COMPONENTS, statePath: false, state: state(), ran: ran(), overrides: { ...OVERRIDES, "hakube:hosts": hostsWithout(victim) }, evaluate: runProgram, log: () => undefined });
        state = () => r.state;
        ran = () => r.ran;
        const executed = r.executions.filter((e) => !e.skipped).map((e) => e.name).sort();
        report.set("removeWorker", { executed, wallMs: r.figures.wallMs, deleted: r.figures.deleted });
        expect(r.figures.deleted).toEqual([`workers-drain-${victim}`, `workers-join-${victim}`]);
        expect(executed).toEqual([`workers-drain-${victim}`, `workers-join-${victim}`, ...lbs.map((l) => `lb-proxy-${l}`)].sort());
        const nodes = ((await kjson(["get", "nodes"])).items as any[]).map((n) => n.metadata.name);
        expect(nodes).not.toContain(victim);
        expect((await onHost(targets[victim], "test -e /etc/kubernetes/kubelet.conf")).exitCode, "kubeadm reset removed the kubelet's kubeconfig").not.toBe(0);
        const ps = await readyPods();
        expect(ps.every((p) => p.spec.nodeName !== victim)).toBe(true);
      }, 5 * 60_000);

      it("adding it back joins only that host (its own steps and the load balancers' backend lists)", async () => {
        const victim = workers[1];
        const r = await deployLab({ components: ALL_COMPONENTS, statePath: false, state: state(), ran: ran(), overrides: OVERRIDES, evaluate: runProgram, log: () => undefined });
        const executed = r.executions.filter((e) => !e.skipped).map((e) => e.name);
        report.set("addWorker", { executed, wallMs: r.figures.wallMs });
        const own = executed.filter((n) => n.endsWith(`-${victim}`));
        const others = executed.filter((n) => !n.endsWith(`-${victim}`));
        expect(others.sort()).toEqual(lbs.map((l) => `lb-proxy-${l}`).sort());
        expect(own).toContain(`workers-join-${victim}`);
        await nodeReady(victim);
      }, 6 * 60_000);
    });

    let poolRun: LabDeployResult | undefined;
    describe("joinInfo from another stack: examples/worker-pool (its own stack) joins by StackReference", () => {
      it("reads the dev stack's joinInfo and kubernetesVersion, joins its host with the pinned CA hash; a second deploy runs nothing", async () => {
        const pool = withRole(topo, "workerpool").map((h) => h.name);
        expect(pool, "the lab booted the pool stack's hosts (examples/worker-pool/Pulumi.dev.yaml)").toEqual(["pool1"]);
        const stack = workerPoolStack(outputs);
        const r = await deployLab({ stack, components: ["hosts", "pool"], statePath: false, fresh: true, evaluate: runProgram, log: () => undefined });
        poolRun = r;
        const executed = r.executions.filter((e) => !e.skipped).map((e) => e.name).sort();
        report.set("workerPool", { executed, wallMs: r.figures.wallMs, criticalPathMs: r.figures.criticalPathMs });
        expect(r.result.harness.ofType(TOKENS.stackReference).map((x) => x.inputs.name)).toEqual([stack.config["workerPool:clusterStack"]]);
        expect(executed).toEqual(["hosts-preflight-cp1", "hosts-preflight-pool1", "pool-drain-pool1", "pool-join-pool1", "pool-prepare-pool1", "pool-token-pool1"]);
        await nodeReady("pool1");
        // the node lifecycle controller lifts its node.kubernetes.io/not-ready taint shortly after Ready; the pool configures none
        const { value: node } = await waitFor("pool1 without taints", async () => {
          const n = await kjson(["get", "node", "pool1"]);
          return (n.spec.taints ?? []).length === 0 ? n : undefined;
        }, 60_000, 1000);
        expect(node.metadata.labels["hakube.dev/pool"]).toBe("team-a");
        expect(node.status.nodeInfo.kubeletVersion).toBe(`v${outputs.kubernetesVersion}`);
        const again = await deployLab({ stack, components: ["hosts", "pool"], statePath: false, state: r.state, ran: r.ran, evaluate: runProgram, log: () => undefined });
        expect(again.figures.executed).toBe(0);
      }, 8 * 60_000);
    });

    describe("pulumi destroy (through the harness: every delete script over SSH, dependents first, independent ones in parallel)", () => {
      /** every pair (a, b) where a depends on b, both deleted: a's delete ended before b's started */
      const orderViolations = (r: LabDestroyResult, registrations: Registration[]) => {
        const ran = new Map(r.executions.filter((e) => !e.skipped).map((e) => [e.name, e]));
        const deps = new Map(registrations.map((x) => [x.name, x.dependencies]));
        const reach = (n: string, seen = new Set<string>()): Set<string> => {
          for (const d of deps.get(n) ?? []) if (!seen.has(d)) (seen.add(d), reach(d, seen));
          return seen;
        };
        const bad: string[] = [];
        for (const [a, ea] of ran) for (const b of reach(a)) { const eb = ran.get(b); if (eb && ea.endMs > eb.startMs) bad.push(`${a} (depends on ${b}) was still being deleted when ${b}'s delete started`); }
        return bad;
      };
      const withDelete = (registrations: Registration[]) => registrations.filter((x) => x.type === TOKENS.command && x.inputs.delete).map((x) => x.name).sort();

      it("the pool stack, then the dev stack: every delete step runs in dependency order, and exits 0", async () => {
        if (KEEP) throw new Error("not run: HAKUBE_LAB_KEEP=1 keeps the cluster (destroy would take it down)");
        expect(poolRun, "the pool stack was deployed").toBeDefined();
        // kubeadm reset's remove-etcd-member phase empties /var/lib/etcd (an external member's data on a
        // shared host): a canary there on a control plane and a worker must survive their resets
        for (const n of [cps[0], workers[0]]) await onHostOk(targets[n], "mkdir -p /var/lib/etcd/member && echo canary > /var/lib/etcd/member/hakube-canary");
        const pool = await destroyLab({ stack: workerPoolStack(outputs), state: poolRun!.state, dependencies: Object.fromEntries(poolRun!.result.harness.registrations.map((x) => [x.name, x.dependencies])), log: () => undefined });
        expect(pool.deleted.sort()).toEqual(withDelete(poolRun!.result.harness.registrations));
        expect(orderViolations(pool, poolRun!.result.harness.registrations)).toEqual([]);
        expect(poolRun!.state.size).toBe(0);
        const dev = await destroyLab({ state: d.state, dependencies: Object.fromEntries(regs.map((x) => [x.name, x.dependencies])), log: () => undefined });
        report.set("destroy", {
          pool: { deleted: pool.deleted.length, wallMs: pool.wallMs },
          dev: { deleted: dev.deleted.length, forgotten: dev.forgotten.length, wallMs: dev.wallMs, criticalPathMs: dev.criticalPathMs, steps: dev.executions.map((e) => ({ name: e.name, ms: e.endMs - e.startMs })) },
        });
        console.log(`[lab cluster] destroy: pool ${pool.deleted.length} deletes in ${(pool.wallMs / 1000).toFixed(1)} s; dev ${dev.deleted.length} deletes in ${(dev.wallMs / 1000).toFixed(1)} s (critical path ${(dev.criticalPathMs / 1000).toFixed(1)} s)`);
        expect(dev.deleted.sort()).toEqual(withDelete(regs));
        expect(orderViolations(dev, regs)).toEqual([]);
        expect(d.state.size, "nothing is left in the state").toBe(0);
        const again = await destroyLab({ state: d.state, dependencies: {}, log: () => undefined });
        expect(again.deleted).toEqual([]);
      }, 15 * 60_000);

      it("leaves the hosts as docs/operations.md says: nodes reset, packages kept; load balancers stopped, the VIP gone; etcd stopped, its data kept", async () => {
        const poolHosts = workerPoolStack(outputs).config["workerPool:hosts"] as { name: string; address: string; hostKey: string }[];
        const all: Record<string, SshTarget> = { ...targets };
        for (const h of poolHosts) all[h.name] = { ...targets[cps[0]], host: h.address, hostKey: h.hostKey };
        const nodes = [...cps, ...workers, ...poolHosts.map((h) => h.name)];
        /** every check (a shell test) holds on the host; failures are named by host and check */
        const expectHost = async (host: string, checks: Record<string, string>) => {
          const out: Record<string, boolean> = {};
          for (const [what, test] of Object.entries(checks)) out[what] = (await onHost(all[host], test)).exitCode === 0;
          expect({ host, ...out }).toEqual({ host, ...Object.fromEntries(Object.keys(checks).map((k) => [k, true])) });
        };
        const nodeChecks = {
          "kubelet.conf removed": "! test -e /etc/kubernetes/kubelet.conf",
          "no static pod manifests": "! ls /etc/kubernetes/manifests/*.yaml >/dev/null 2>&1",
          "no container runs": 'out=$(crictl ps -q) && test -z "$out"',
          "kubelet stopped": "! systemctl is-active --quiet kubelet",
          "packages kept": "command -v kubeadm && command -v kubelet && command -v kubectl && command -v containerd",
        };
        for (const n of [cps[0], workers[0]]) expect((await onHost(targets[n], "cat /var/lib/etcd/member/hakube-canary")).stdout, `${n}: /var/lib/etcd survived kubeadm reset`).toBe("canary\n");
        for (const n of nodes) await expectHost(n, nodeChecks);
        const lbChecks = {
          "keepalived stopped": "! systemctl is-active --quiet keepalived",
          "haproxy stopped": "! systemctl is-active --quiet haproxy",
          "packages kept": "command -v keepalived && command -v haproxy",
        };
        for (const n of lbs) await expectHost(n, lbChecks);
        expect(await holders(lbs, topo.vip), "no host holds the VIP").toEqual([]);
        const kubeadm = ETCD_DEPLOYMENT === "kubeadm";
        const etcdChecks: Record<string, string> = {
          "no etcd process": "! pgrep -x etcd",
          "data kept": "test -d /var/lib/etcd/member",
          "keys removed": kubeadm ? `! ls ${KUBEADM_PATHS.pkiDir}/*.key >/dev/null 2>&1` : `! ls ${ETCD_SYSTEMD_PATHS.pkiDir}/*.key >/dev/null 2>&1`,
          ...(kubeadm
            ? { "static pod removed": `! test -e ${KUBEADM_PATHS.manifestFile}`, "kubelet disabled": "! systemctl is-enabled --quiet kubelet" }
            : { "unit removed": `! test -e ${ETCD_SYSTEMD_PATHS.unitFile}` }),
        };
        for (const n of withRole(topo, "etcd").map((h) => h.name)) await expectHost(n, etcdChecks);
      }, 5 * 60_000);
    });
  });
});
