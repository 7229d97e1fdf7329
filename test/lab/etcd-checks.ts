/**
 * The lab's etcd assertions, shared by the etcd/load-balancer suites (etcd.deployment systemd) and
 * the cluster test (etcd.deployment kubeadm): the same checks whichever way the members run.
 * Each function registers `it`s inside the caller's `describe`; `get()` is read when a test runs.
 */
import { afterAll, expect, it } from "vitest";
import type { SshTarget } from "../harness/ssh";
import { EtcdCreds, EtcdKv, etcdctl, etcdHostOf, etcdMemberEndpoint, etcdStatus, labRun, now, onHostOk, percentile, pid1Of, programEtcdCert, round, sleep, waitEtcdHealthy, waitFor, withRole, type Topology } from "./labctl";
import type { LabReport } from "./report";

export interface EtcdCheckContext {
  /** `etcdEndpoints` output */
  endpoints: string[];
  etcdNames: string[];
  topo: Topology;
  /** a registration's outputs by resource name (certificates and keys of the program's PKI) */
  reg: (name: string) => Record<string, any>;
  report: LabReport;
  figure?: (k: string, v: unknown) => void;
  /** SSH targets by host name (process crashes) */
  targets?: Record<string, SshTarget>;
}

/** Client credentials from the program's own certificates, made once per file and disposed after it. */
function credentials(get: () => EtcdCheckContext) {
  let api: EtcdCreds | undefined;
  let hc: EtcdCreds | undefined;
  afterAll(() => {
    api?.dispose();
    hc?.dispose();
  });
  const c = () => {
    const { reg } = get();
    const apiCert = programEtcdCert(reg, "apiserver-etcd-client");
    const ca = apiCert.caCertPem;
    api ??= new EtcdCreds(apiCert);
    hc ??= new EtcdCreds(programEtcdCert(reg, "healthcheck-client"));
    return { api, hc, ca, kv: (ep: string) => new EtcdKv(ep, apiCert) };
  };
  return c;
}

/** Mutual TLS, refusals, replication. */
export function etcdClusterChecks(get: () => EtcdCheckContext): void {
  const creds = credentials(get);

  it("is healthy through mutual TLS with the program's own client certificates (apiserver-etcd-client, healthcheck-client)", () => {
    const { endpoints, topo, etcdNames } = get();
    const { api, hc } = creds();
    expect(endpoints).toEqual(withRole(topo, "etcd").map((h) => `https://${h.address}:2379`));
    for (const c of [api, hc]) {
      const h = etcdctl(c, endpoints, ["endpoint", "health"]);
      expect(h.exitCode, h.stderr + h.stdout).toBe(0);
      expect((h.stdout + h.stderr).match(/is healthy/g)?.length).toBe(endpoints.length);
    }
    const m = etcdctl(api, endpoints, ["member", "list", "-w", "json"]);
    expect(m.exitCode, m.stderr).toBe(0);
    const members = JSON.parse(m.stdout).members as { name: string; clientURLs: string[] }[];
    expect(members.map((x) => x.name).sort()).toEqual([...etcdNames].sort());
    expect(members.flatMap((x) => x.clientURLs).sort()).toEqual([...endpoints].sort());
    const status = etcdStatus(api, endpoints);
    expect(status).toHaveLength(endpoints.length);
    expect(new Set(status.map((x) => x.clusterId)).size).toBe(1);
    expect(new Set(status.map((x) => x.leader)).size).toBe(1);
    expect(status.map((x) => x.memberId)).toContain(status[0].leader);
  });

  it("refuses a client without a certificate, and one with a certificate from another CA (the Kubernetes CA's admin)", async () => {
    const { endpoints, reg, report } = get();
    const { api, ca } = creds();
    const anon = etcdctl(api, endpoints, ["endpoint", "health"], { anonymous: true, timeoutS: 2 });
    expect(anon.exitCode).not.toBe(0);
    expect(anon.stdout + anon.stderr).not.toMatch(/is healthy/);
    const refusal = async (c: { caCertPem: string; certPem?: string; keyPem?: string }) => {
      const kv = new EtcdKv(endpoints[0], c);
      try {
        await kv.put("e2e/refused", "x", 3000);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      } finally {
        kv.close();
      }
    };
    const anonymous = await refusal({ caCertPem: ca });
    const otherCa = await refusal({ caCertPem: ca, certPem: reg("pki-admin-cert").certPem, keyPem: reg("pki-admin-key").privateKeyPem });
    report.set("etcdRefusals", { anonymous: anonymous?.match(/[^:]*bad certificate|tls: [a-z ]+/)?.[0] ?? anonymous, otherCa: otherCa?.match(/[^:]*bad certificate|tls: [a-z ]+/)?.[0] ?? otherCa });
    expect(anonymous, "a write without a client certificate").toMatch(/certificate/);
    // etcd 3.4 names the certificate; 3.6 ends the TLS handshake and gRPC reports the channel UNAVAILABLE
    expect(otherCa, "a write with a certificate from the Kubernetes CA").toMatch(/certificate|UNAVAILABLE/);
    const g = etcdctl(api, [endpoints[0]], ["get", "e2e/refused", "--print-value-only"]);
    expect(g.exitCode, g.stderr).toBe(0);
    expect(g.stdout.trim(), "no refused write landed").toBe("");
  });

  it("replicates: data written through one member is read back from each other member's own copy", async () => {
    const { endpoints, etcdNames } = get();
    const { api } = creds();
    const value = `written-through-${etcdNames[0]}-${Date.now()}`;
    const put = etcdctl(api, [endpoints[0]], ["put", "e2e/replication", value]);
    expect(put.exitCode, put.stderr).toBe(0);
    for (const ep of endpoints.slice(1)) {
      // serializable: the member answers from its own store, without asking the leader
      const got = await waitFor(`e2e/replication on ${ep}`, () => {
        const g = etcdctl(api, [ep], ["get", "e2e/replication", "--consistency=s", "--print-value-only"]);
        return g.exitCode === 0 && g.stdout.trim() === value;
      }, 5000, 100);
      expect(got.value).toBe(true);
    }
  });
}

/**
 * A follower crashes while writes go through the leader, then the leader's host crashes.
 * `follower`: `host` — SIGKILL of the host's PID 1, back with `lab start` (systemd starts etcd at
 * boot); `process` — SIGKILL of the etcd process only, and nothing else: the supervisor (the
 * kubelet, for kubeadm's static pod) restarts it.
 */
export function etcdCrashTests(get: () => EtcdCheckContext, follower: "host" | "process"): void {
  const creds = credentials(get);
  const hostOf = (ep: string) => etcdHostOf(get().topo, ep);

  it(
    follower === "host"
      ? "crash of an etcd follower: writes keep succeeding; the member rejoins after `lab start` and the cluster is healthy"
      : "crash of an etcd follower's process (SIGKILL): writes keep succeeding; its supervisor restarts it, it catches up, the cluster is healthy",
    async () => {
      const { endpoints, figure, targets } = get();
      const { api, kv } = creds();
      const leaderEp = etcdMemberEndpoint(api, endpoints, "leader");
      const victimEp = etcdMemberEndpoint(api, endpoints, "follower");
      const victim = hostOf(victimEp);
      const writer = kv(leaderEp);
      try {
        const base: number[] = [];
        for (let i = 0; i < 30; i++) base.push(await writer.put(`e2e/baseline/${i}`, String(i)));
        let oldPid = "";
        if (follower === "host") await labRun(["crash", victim]);
        else {
          if (!targets) throw new Error("etcdCrashTests(process) needs the SSH targets");
          oldPid = (await onHostOk(targets[victim], "pgrep -xo etcd")).trim();
          expect(oldPid, `an etcd process on ${victim}`).toMatch(/^\d+$/);
          await onHostOk(targets[victim], `kill -KILL ${oldPid}`);
        }
        const tDown = now();
        const lat: number[] = [];
        const errors: string[] = [];
        let i = 0;
        while (now() - tDown < 5000) {
          try {
            lat.push(await writer.put(`e2e/while-down/${i++}`, String(i), 3000));
          } catch (e) {
            errors.push((e as Error).message);
          }
          await sleep(20);
        }
        const marker = `written-while-${victim}-was-down-${Date.now()}`;
        await writer.put("e2e/while-down/marker", marker);
        const tStart = follower === "host" ? now() : tDown;
        const started = follower === "host" ? await labRun(["start", victim]) : undefined;
        const healthy = await waitFor(`${victim} healthy`, () => etcdctl(api, [victimEp], ["endpoint", "health"], { timeoutS: 2 }).exitCode === 0, 120_000, 100);
        const own = kv(victimEp);
        let caught;
        try {
          caught = await waitFor(`${victim} has the data written while it was down`, async () => (await own.getLocal("e2e/while-down/marker")) === marker, 30_000, 100);
        } finally {
          own.close();
        }
        const newPid = follower === "process" ? (await onHostOk(targets![victim], "pgrep -xo etcd")).trim() : undefined;
        const all = etcdctl(api, endpoints, ["endpoint", "health"]);
        const fig = {
          member: victim,
          crashed: follower,
          writesThrough: leaderEp,
          writes: lat.length,
          failed: errors.length,
          p50Ms: round(percentile(lat, 50)),
          p99Ms: round(percentile(lat, 99)),
          maxMs: round(Math.max(...lat)),
          baselineP50Ms: round(percentile(base, 50)),
          baselineMaxMs: round(Math.max(...base)),
          ...(started ? { sshAfterStartMs: round(started.ms) } : {}),
          [follower === "host" ? "rejoinMs" : "restartedAndHealthyAfterKillMs"]: round(healthy.at - tStart),
          caughtUpMs: round(caught.at - tStart),
        };
        figure?.("etcdFollower", fig);
        expect(errors).toEqual([]);
        expect(lat.length).toBeGreaterThan(20);
        expect(fig.maxMs).toBeLessThan(2000);
        if (newPid !== undefined) expect(newPid, "a new etcd process (restarted by its supervisor)").not.toBe(oldPid);
        expect(all.exitCode, all.stderr).toBe(0);
        expect((all.stdout + all.stderr).match(/is healthy/g)?.length).toBe(endpoints.length);
      } finally {
        writer.close();
        if (!pid1Of(victim)) await labRun(["start", victim], { allowFail: true });
      }
    },
    240_000,
  );

  it("crash of the etcd leader's host: a new leader takes writes within 15 s; the old one rejoins", async () => {
    const { endpoints, figure } = get();
    const { api, kv } = creds();
    const leaderEp = etcdMemberEndpoint(api, endpoints, "leader");
    const leader = hostOf(leaderEp);
    const viaEp = endpoints.find((e) => e !== leaderEp)!;
    const writer = kv(viaEp);
    try {
      await writer.put("e2e/leader/before", "x");
      const tCmd = now();
      const crash = labRun(["crash", leader]);
      let lastOk = tCmd;
      let firstFail = 0;
      let recovered = 0;
      let failures = 0;
      let i = 0;
      while (!recovered && now() - tCmd < 20_000) {
        try {
          await writer.put(`e2e/leader/${i++}`, "x", 500);
          if (firstFail) recovered = now();
          else lastOk = now();
        } catch {
          failures++;
          if (!firstFail) firstFail = now();
        }
        await sleep(20);
      }
      await crash;
      // resolution: one write attempt (≤ 500 ms each, then 20 ms apart)
      const fig = { leader, writesThrough: viaEp, unavailableMs: firstFail ? round(recovered - lastOk) : 0, failedWrites: failures };
      figure?.("etcdLeader", fig);
      expect(!firstFail || recovered > 0, "writes succeed again").toBe(true);
      expect(fig.unavailableMs).toBeLessThan(15_000);
      const tStart = now();
      await labRun(["start", leader]);
      const back = await waitEtcdHealthy(api, endpoints);
      figure?.("etcdLeaderRejoin", { leader, healthyAfterStartMs: round(back.at - tStart) });
    } finally {
      writer.close();
      if (!pid1Of(leader)) await labRun(["start", leader], { allowFail: true });
    }
  }, 240_000);
}
