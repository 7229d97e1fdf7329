/**
 * The etcd component against real etcd processes (Debian's etcd 3.4): the program is evaluated
 * under the harness (real certificates), and the member/install/health commands it rendered run
 * on this machine as three "hosts" on 127.0.0.11–13 (see local-hosts.ts: paths relocated, a fake
 * systemctl that starts the unit's ExecStart as its User). Skipped, with the reason, when etcd
 * is not installed or this is not root.
 *
 * One more rewrite than paths and the 127.0.0.1 listener: on one machine every peer connection
 * leaves from 127.0.0.1 (the kernel's source address for 127/8), and etcd rejects a peer whose
 * certificate's IP SANs do not include the connection's source address. The test therefore
 * re-issues each peer certificate from the same CA, key, subject, usages and SANs plus
 * 127.0.0.1, and substitutes it in the rendered commands. Real hosts connect from their
 * internalAddress, which the program's peer certificates carry.
 */
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { renderHealthGateScript } from "../../components/etcd/render";
import { wrapScript } from "../../components/remote/shell";
import { certRequest, locallySignedCert } from "../harness/crypto";
import type { Registration, ResourceState } from "../harness/mocks";
import { readStackFile, runProgram, TEST_SSH_KEY, type StackConfig } from "../harness/program";
import { analyzeGap, EtcdGrpc, now, sleep, Writer } from "./failover";
import { busyPort, LocalHost, realEtcdUnavailable, runTool, tempBase } from "./local-hosts";
import { describeReal } from "../harness/real";

const DATA_DIR = "/srv/hakube-test-etcd-data";
const ADDRS: Record<string, string> = { etcd1: "127.0.0.11", etcd2: "127.0.0.12", etcd3: "127.0.0.13", etcd4: "127.0.0.14" };

function stackConfig(etcdHosts: string[], version = "3.4.23"): StackConfig {
  return {
    ...readStackFile("Pulumi.dev.yaml"),
    "hakube:sshPrivateKey": TEST_SSH_KEY,
    "hakube:hosts": [
      { name: "lb1", address: "10.123.0.11", roles: ["loadbalancer"] },
      { name: "lb2", address: "10.123.0.12", roles: ["loadbalancer"] },
      ...etcdHosts.map((n) => ({ name: n, address: ADDRS[n], roles: ["etcd"] })),
      { name: "cp1", address: "10.123.0.31", roles: ["controlplane"] },
      { name: "worker1", address: "10.123.0.41", roles: ["worker"] },
    ],
    "hakube:etcd": { source: "apt", version, dataDir: DATA_DIR },
  };
}

interface Rendered {
  commands: Map<string, Registration>;
  regs: Registration[];
}
/** Rendered peer certificate PEM → the same certificate with 127.0.0.1 added (see the header). */
const substitutions = new Map<string, string>();

async function render(config: StackConfig, state: ResourceState): Promise<Rendered> {
  const r = await runProgram(config, { state });
  if (r.error) throw r.error;
  expect(r.harness.failures()).toEqual([]);
  const regs = r.harness.registrations;
  for (const cert of regs.filter((x) => /^etcd-peer-.*-cert$/.test(x.name))) {
    if (substitutions.has(cert.outputs.certPem)) continue;
    const csr = regs.find((x) => x.name === cert.name.replace(/-cert$/, "-csr"))!;
    const loopCsr = await certRequest({ ...csr.inputs, ipAddresses: [...csr.inputs.ipAddresses, "127.0.0.1"] });
    const loopCert = await locallySignedCert({ ...cert.inputs, certRequestPem: loopCsr.certRequestPem });
    substitutions.set(cert.outputs.certPem, loopCert.certPem);
  }
  return { commands: new Map(r.harness.commands().map((c) => [c.name, c])), regs };
}

const skip = realEtcdUnavailable();
if (skip) console.warn(`real etcd tests skipped: ${skip}`);

describeReal("EtcdCluster on real etcd 3.x processes (127.0.0.11-13)", skip, () => {
  const base = skip ? "" : tempBase();
  const hosts: Record<string, LocalHost> = {};
  const state: ResourceState = new Map();
  let first: Rendered;
  let tls: { ca: string; cert: string; key: string };
  const timings: Record<string, string> = {};

  const host = (n: string) => (hosts[n] ??= new LocalHost(n, ADDRS[n], base, DATA_DIR, substitutions));
  const cmd = (r: Rendered, name: string) => {
    const c = r.commands.get(name);
    if (!c) throw new Error(`no command ${name}`);
    return c;
  };
  const runStep = async (r: Rendered, step: string, h: string, env?: Record<string, string>) => {
    const c = cmd(r, `etcd-${step}-${h}`);
    return host(h).run(c.inputs.create, c.inputs.stdin, { env });
  };
  const etcdctl = (args: string[], endpoints = "https://127.0.0.11:2379,https://127.0.0.12:2379,https://127.0.0.13:2379", auth = tls) =>
    runTool("etcdctl", [
      `--endpoints=${endpoints}`,
      `--cacert=${auth.ca}`,
      ...(auth.cert ? [`--cert=${auth.cert}`, `--key=${auth.key}`] : []),
      "--dial-timeout=2s",
      "--command-timeout=5s",
      ...args,
    ]);

  beforeAll(async () => {
    const busy = await busyPort(Object.values(ADDRS), [2379, 2380]);
    if (busy) throw new Error(`${busy} is in use: the real etcd test needs 127.0.0.11-14 ports 2379/2380 free`);
    first = await render(stackConfig(["etcd1", "etcd2", "etcd3"]), state);
    // The kube-apiserver's client certificate, as the component hands it to the control plane.
    const out = (n: string) => first.regs.find((r) => r.name === n)!.outputs;
    tls = {
      ca: path.join(base, "ca.crt"),
      cert: path.join(base, "apiserver-etcd-client.crt"),
      key: path.join(base, "apiserver-etcd-client.key"),
    };
    fs.writeFileSync(tls.ca, out("pki-etcd-ca-cert").certPem);
    fs.writeFileSync(tls.cert, out("etcd-apiserver-etcd-client-cert").certPem);
    fs.writeFileSync(tls.key, out("etcd-apiserver-etcd-client-key").privateKeyPem, { mode: 0o600 });
  });

  afterAll(() => {
    for (const h of Object.values(hosts)) h.cleanup();
    console.log(`etcd timings (etcd ${"3.4"} on loopback, 2 cores):\n${Object.entries(timings).map(([k, v]) => `  ${k}: ${v}`).join("\n")}`);
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  test("install (apt, already installed here) → member steps in host order → health gate", async () => {
    for (const h of ["etcd1", "etcd2", "etcd3"]) {
      const r = await runStep(first, "install", h);
      expect(r.stderr, r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/ok: etcd 3\.4\.\d+ from the distribution/);
    }
    const t0 = Date.now();
    const per: string[] = [];
    for (const h of ["etcd1", "etcd2", "etcd3"]) {
      const r = await runStep(first, "member", h);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`started ${h}`);
      per.push(`${h} ${r.ms} ms`);
      // the first member must not wait for a quorum
      expect(r.ms).toBeLessThan(10_000);
      const stat = (p: string) => fs.statSync(host(h).path(p));
      expect((stat("/etc/etcd/pki/server.key").mode & 0o777).toString(8)).toBe("600");
      expect(stat("/etc/etcd/pki/server.key").uid).toBe(stat(DATA_DIR).uid); // owned by etcd, like the data dir
      expect((stat(DATA_DIR).mode & 0o777).toString(8)).toBe("700");
    }
    const gate = await runStep(first, "health", "etcd1");
    expect(gate.code, gate.stderr).toBe(0);
    expect(gate.stdout).toMatch(/etcd cluster healthy \(3 members\)/);
    expect(gate.stdout).toContain("IS LEADER");
    timings["startup (3 member steps in host order + health gate)"] = `${Date.now() - t0} ms (member steps: ${per.join(", ")}; gate ${gate.ms} ms)`;
    for (const h of ["etcd1", "etcd2", "etcd3"]) expect(host(h).systemctlCalls()).toContain("start --no-block etcd.service");
  });

  test("endpoint health --cluster passes with the healthcheck client certificate; no certificate → refused", async () => {
    const pki = host("etcd1").path("/etc/etcd/pki");
    const hc = { ca: `${pki}/ca.crt`, cert: `${pki}/healthcheck-client.crt`, key: `${pki}/healthcheck-client.key` };
    const ok = await etcdctl(["endpoint", "health", "--cluster"], undefined, hc);
    expect(ok.code, ok.stderr).toBe(0);
    expect(`${ok.stdout}${ok.stderr}`.match(/is healthy/g)).toHaveLength(3); // etcdctl 3.4 reports on stderr

    const anon = await etcdctl(["put", "/hakube/anon", "x", "--command-timeout=1s"], "https://127.0.0.11:2379", { ca: tls.ca, cert: "", key: "" });
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/certificate|tls|context deadline exceeded/i);
    const get = await etcdctl(["get", "/hakube/anon"]);
    expect(get.stdout).not.toContain("/hakube/anon");

    // the peer port demands a client certificate too: without one no request gets through
    const peerGet = (cert?: { cert: string; key: string }) =>
      new Promise<string>((resolve) => {
        const req = https.get(
          { host: "127.0.0.12", port: 2380, path: "/version", ca: fs.readFileSync(tls.ca), ...(cert ? { cert: fs.readFileSync(cert.cert), key: fs.readFileSync(cert.key) } : {}), timeout: 3000 },
          (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve(`${res.statusCode} ${body}`));
          },
        );
        req.on("error", (e) => resolve(`error ${e.message}`));
        req.on("timeout", () => req.destroy(new Error("timeout")));
      });
    expect(await peerGet()).toMatch(/^error .*(certificate required|alert|socket hang up|ECONNRESET)/i);
    expect(await peerGet({ cert: `${pki}/peer.crt`, key: `${pki}/peer.key` })).toMatch(/^200 .*"etcdserver":"3\.\d+\.\d+"/);

    const put = await etcdctl(["put", "/hakube/probe", "v1"]);
    expect(put.code, put.stderr).toBe(0); // the apiserver-etcd-client certificate (component output) works
  });

  test("a second run changes nothing and restarts nothing", async () => {
    const before = Object.fromEntries(["etcd1", "etcd2", "etcd3"].map((h) => [h, host(h).pid()]));
    const calls = Object.fromEntries(["etcd1", "etcd2", "etcd3"].map((h) => [h, host(h).systemctlCalls().length]));
    for (const h of ["etcd1", "etcd2", "etcd3"]) {
      for (const step of ["install", "member"]) {
        const r = await runStep(first, step, h);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).not.toMatch(/^changed |^removed |started|restart/m);
      }
      expect(host(h).pid()).toBe(before[h]);
      const newCalls = host(h).systemctlCalls().slice(calls[h]);
      expect(newCalls.filter((c) => /^(start|restart|stop|daemon-reload|enable)/.test(c))).toEqual([]);
    }
  });

  test("one member killed: writes succeed; restarted, it catches up; the gate names a dead member", async () => {
    // kill a follower (the leader would add an election to the write latency)
    const status = await etcdctl(["endpoint", "status", "-w", "simple"]);
    const leaderLine = status.stdout.split("\n").find((l) => /, true, /.test(l.replace(/\s+/g, " "))) ?? "";
    const victim = ["etcd3", "etcd2", "etcd1"].find((h) => !leaderLine.includes(ADDRS[h]))!;
    host(victim).kill("SIGKILL");
    const survivors = ["etcd1", "etcd2", "etcd3"].filter((h) => h !== victim).map((h) => `https://${ADDRS[h]}:2379`).join(",");
    const w = await etcdctl(["put", "/hakube/written-while-down", "yes"], survivors);
    expect(w.code, w.stderr).toBe(0);
    timings[`write with ${victim} down (etcdctl round trip incl. TLS setup)`] = `${w.ms} ms`;
    const lat: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await etcdctl(["put", `/hakube/down-${i}`, String(i)], survivors);
      expect(r.code).toBe(0);
      lat.push(r.ms);
    }
    timings[`5 more writes with ${victim} down`] = `${lat.join(", ")} ms`;

    // the gate (short bound here) fails and names the dead member
    const gateHost = host("etcd1");
    const gate = wrapScript({
      host: "etcd1",
      step: "health",
      user: "root",
      body: renderHealthGateScript({ members: ["etcd1", "etcd2", "etcd3"].map((n) => ({ name: n, internalAddress: ADDRS[n] })), clusterName: "dev", stamps: {}, timeoutSeconds: 2, commandTimeoutSeconds: 1 }),
    });
    const failed = await gateHost.run(gate);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(new RegExp(`^hakube: etcd1: health: health gate: etcd not healthy after 2s: .*${victim} \\(https://${ADDRS[victim].replace(/\./g, "\\.")}:2379\\)`, "m"));

    // the member step brings it back (as `pulumi up` or systemd's Restart=always would)
    const t0 = Date.now();
    const r = await runStep(first, "member", victim);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`started ${victim}`);
    let caughtUp = false;
    while (Date.now() - t0 < 20_000) {
      const g = await etcdctl(["get", "/hakube/written-while-down", "--consistency=s", "--print-value-only"], `https://${ADDRS[victim]}:2379`);
      if (g.code === 0 && g.stdout.trim() === "yes") {
        caughtUp = true;
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(caughtUp).toBe(true);
    timings[`${victim} restart → serves the key written while it was down (local read)`] = `${Date.now() - t0} ms`;
    const again = await runStep(first, "health", "etcd1");
    expect(again.code, again.stderr).toBe(0);
    timings["cluster healthy again (from restart)"] = `${Date.now() - t0} ms`;
  });

  test("leader killed: writes through a surviving member resume within a generous bound (the rendered raft tuning)", async () => {
    const names = ["etcd1", "etcd2", "etcd3"];
    // the program's default tuning is what the members run with
    for (const h of names) {
      const cfg = fs.readFileSync(host(h).path("/etc/etcd/etcd.conf.yml"), "utf8");
      expect(cfg).toMatch(/^heartbeat-interval: 100$/m);
      expect(cfg).toMatch(/^election-timeout: 1000$/m);
    }
    const clientTls = { caPem: fs.readFileSync(tls.ca, "utf8"), certPem: fs.readFileSync(tls.cert, "utf8"), keyPem: fs.readFileSync(tls.key, "utf8") };
    const clients = Object.fromEntries(names.map((h) => [h, new EtcdGrpc(`https://${ADDRS[h]}:2379`, clientTls)]));
    let leader: string | undefined;
    try {
      const leaderOf = async () => {
        const st = await Promise.all(names.map((h) => clients[h].status().catch(() => undefined)));
        const id = st.find((s) => s && s.leader !== 0n)?.leader;
        return names.find((_, i) => st[i]?.memberId === id);
      };
      leader = await leaderOf();
      expect(leader).toBeDefined();
      const via = names.find((h) => h !== leader)!;
      const w = new Writer(clients[via], 25, 2000);
      await sleep(1000);
      const cut = now();
      host(leader!).kill("SIGKILL");
      while (now() - cut < 20_000 && !w.okSince(cut)) await sleep(20);
      await sleep(1000);
      const gap = analyzeGap(await w.stop(), cut);
      timings[`leader ${leader} SIGKILLed: first write through ${via} sent after the kill succeeded after (heartbeat 100 ms, election 1000 ms)`] =
        `${gap.firstWriteAfterMs} ms (longest gap between successful writes ${gap.longestGapMs} ms; ${gap.failed}/${gap.sent} writes failed)`;
      expect(gap.firstWriteAfterMs, "no write succeeded within 20 s of the leader's death").toBeLessThan(15_000);
      const next = await leaderOf();
      expect(next).toBeDefined();
      expect(next).not.toBe(leader);
    } finally {
      for (const c of Object.values(clients)) c.close();
    }
    // bring it back (as Restart=always would) before the next test
    const r = await runStep(first, "member", leader!);
    expect(r.code, r.stderr).toBe(0);
    const again = await runStep(first, "health", "etcd1");
    expect(again.code, again.stderr).toBe(0);
  });

  test("a change restarts the members one at a time, never two down", async () => {
    // Same PKI (state), a new etcd version: every member's stamp changes (binary changed).
    const second = await render(stackConfig(["etcd1", "etcd2", "etcd3"], "3.4.22"), state);
    for (const h of ["etcd1", "etcd2", "etcd3"]) expect(cmd(second, `etcd-member-${h}`).inputs.create).not.toBe(cmd(first, `etcd-member-${h}`).inputs.create);
    const pids = Object.fromEntries(["etcd1", "etcd2", "etcd3"].map((h) => [h, host(h).pid()]));

    let polling = true;
    let maxDown = 0;
    let samples = 0;
    const poll = (async () => {
      while (polling) {
        const r = await runTool("etcdctl", [
          "--endpoints=https://127.0.0.11:2379,https://127.0.0.12:2379,https://127.0.0.13:2379",
          `--cacert=${tls.ca}`,
          `--cert=${tls.cert}`,
          `--key=${tls.key}`,
          "--dial-timeout=500ms",
          "--command-timeout=1s",
          "endpoint",
          "health",
        ]);
        const down = (`${r.stdout}${r.stderr}`.match(/is unhealthy/g) ?? []).length;
        maxDown = Math.max(maxDown, down);
        samples++;
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const t0 = Date.now();
    const results: Record<string, Awaited<ReturnType<typeof runStep>>> = {};
    for (const h of ["etcd1", "etcd2", "etcd3"]) {
      // each restarted member takes 1 s before it serves (as with a big data dir): the next
      // member may only go down after this one is back
      results[h] = await runStep(second, "member", h, { FAKE_START_DELAY: "1" });
      if (results[h].code !== 0) break;
    }
    polling = false;
    await poll;
    const per = Object.entries(results).map(([h, r]) => `${h} ${r.ms} ms`);
    timings["rolling restart of 3 members (each waits for health; fake 1 s start delay)"] = `${Date.now() - t0} ms (${per.join(", ")}); ${samples} health samples, at most ${maxDown} member down`;
    expect(maxDown).toBe(1); // a member was seen down, never two
    for (const h of ["etcd1", "etcd2", "etcd3"]) {
      const r = results[h];
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`restarted ${h}: it and the cluster are healthy again`));
      expect(host(h).pid()).not.toBe(pids[h]);
    }
    for (const h of ["etcd1", "etcd2", "etcd3"]) expect(host(h).systemctlCalls().filter((c) => c.startsWith("restart "))).toHaveLength(1);
    const g = await etcdctl(["get", "/hakube/probe", "--print-value-only"]);
    expect(g.stdout.trim()).toBe("v1");
    first = second;
  });

  test("a version jump etcd cannot take (3.4 → 3.6) is refused before any member goes down", async () => {
    const jump = await render(stackConfig(["etcd1", "etcd2", "etcd3"], "3.6.6"), state);
    const pid = host("etcd1").pid();
    const r = await runStep(jump, "member", "etcd1");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hakube: etcd1: member: etcd1 runs etcd 3\.4\.\d+; going to 3\.6 is not a supported upgrade \(one minor version at a time, no downgrades\): nothing restarted$/m);
    expect(host("etcd1").pid()).toBe(pid);
  });

  test("a changed member list is refused on the hosts; the running cluster is untouched", async () => {
    const changed = await render(stackConfig(["etcd1", "etcd2", "etcd4"], "3.4.22"), state);
    const pids = Object.fromEntries(["etcd1", "etcd2", "etcd3"].map((h) => [h, host(h).pid()]));
    const r1 = await runStep(changed, "member", "etcd1");
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/^hakube: etcd1: member: the etcd member list changed: etcd1 was bootstrapped with etcd1=https:\/\/127\.0\.0\.11:2380,etcd2=.*,etcd3=.*the configuration now says .*etcd4=https:\/\/127\.0\.0\.14:2380.*not supported yet/m);
    const r4 = await runStep(changed, "member", "etcd4");
    expect(r4.code).toBe(1);
    expect(r4.stderr).toMatch(/^hakube: etcd4: member: an etcd cluster already runs at .* with peers https:\/\/127\.0\.0\.11:2380 https:\/\/127\.0\.0\.12:2380 https:\/\/127\.0\.0\.13:2380, but the configuration lists .*127\.0\.0\.14.*refusing to start etcd4/m);
    expect(host("etcd4").pid()).toBeUndefined();
    expect(fs.existsSync(host("etcd4").path("/etc/systemd/system/etcd.service"))).toBe(false);
    for (const h of ["etcd1", "etcd2", "etcd3"]) expect(host(h).pid()).toBe(pids[h]);
    const gate = await runStep(first, "health", "etcd1");
    expect(gate.code, gate.stderr).toBe(0);
  });

  test("delete: stops and disables etcd, removes our files, keeps the data; a new deployment refuses that data", async () => {
    const c = cmd(first, "etcd-member-etcd3");
    const r = await host("etcd3").run(c.inputs.delete);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("stopped etcd.service");
    expect(r.stdout).toContain("disabled etcd.service");
    expect(host("etcd3").pid()).toBeUndefined();
    expect(fs.existsSync(host("etcd3").path("/etc/etcd/pki/server.key"))).toBe(false);
    expect(fs.existsSync(host("etcd3").path("/etc/systemd/system/etcd.service"))).toBe(false);
    expect(fs.existsSync(path.join(host("etcd3").path(DATA_DIR), "member"))).toBe(true);
    const again = await host("etcd3").run(c.inputs.delete);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toMatch(/^(stopped|disabled|removed) /m);

    const up = await runStep(first, "member", "etcd3");
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(/^hakube: etcd3: member: .*holds etcd data hakube did not bootstrap/m);
    expect(host("etcd3").pid()).toBeUndefined();
  });
});
