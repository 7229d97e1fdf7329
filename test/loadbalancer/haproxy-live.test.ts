/**
 * The real HAProxy with the real rendered haproxy.cfg (only addresses, ports and paths
 * substituted) on loopback, in front of small HTTPS "API servers":
 *   cp1, cp2  certificates from our test CA with the `kubernetes` SAN   → UP, get traffic
 *   cp3       certificate from ANOTHER CA (same SAN)                    → DOWN, no traffic
 *   cp4       certificate from our CA without the `kubernetes` SAN      → DOWN, no traffic
 * Then: a stopped backend (refused) and a hung one (silent) are marked DOWN within 6 s
 * (measured on the stats socket); with every backend down the local health endpoint and the
 * rendered keepalived check script still succeed (no flapping); with HAProxy dead the check fails.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, expect, it } from "vitest";
import { renderCheckScript, renderHaproxyConfig, resolve, type Resolved } from "../../components/loadbalancer/render";
import { isRoot, makeCa, missing, serverCert, type TestCa } from "./fixtures";
import { describeReal } from "../harness/real";

const why = missing(["haproxy", "ss"]);
if (why) console.warn(`[loadbalancer] live HAProxy test skipped: ${why}`);

interface Backend {
  name: string;
  port: number;
  server: https.Server;
  sockets: Set<net.Socket>;
  /** SNI names seen on /readyz (the health checks) */
  checkSni: Set<string>;
  checks: number;
  hang: boolean;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

async function startBackend(name: string, cert: TestCa): Promise<Backend> {
  const b: Backend = { name, port: 0, server: undefined as unknown as https.Server, sockets: new Set(), checkSni: new Set(), checks: 0, hang: false };
  b.server = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    if (req.url === "/readyz") {
      b.checks++;
      const sni = (req.socket as TLSSocket).servername;
      if (sni) b.checkSni.add(sni);
      if (b.hang) return; // never answer: the check times out
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", connection: "close" }).end(name);
  });
  b.server.on("connection", (s: net.Socket) => {
    b.sockets.add(s);
    s.on("close", () => b.sockets.delete(s));
  });
  b.server.on("tlsClientError", () => undefined);
  await new Promise<void>((res) => b.server.listen(0, "127.0.0.1", () => res()));
  b.port = (b.server.address() as net.AddressInfo).port;
  return b;
}

async function stopBackend(b: Backend) {
  const closed = new Promise<void>((res) => b.server.close(() => res()));
  for (const s of b.sockets) s.destroy();
  await closed;
}

function adminCommand(socket: string, cmd: string): Promise<string> {
  return new Promise((res, rej) => {
    const c = net.createConnection(socket);
    let out = "";
    c.on("connect", () => c.write(`${cmd}\n`));
    c.on("data", (d) => (out += d));
    c.on("end", () => res(out));
    c.on("error", rej);
  });
}

/** server name → status ("UP", "DOWN", "UP 1/2", …) of backend kube-apiserver */
async function serverStates(socket: string): Promise<Record<string, string>> {
  const csv = await adminCommand(socket, "show stat");
  const lines = csv.split("\n").filter(Boolean);
  const head = lines[0].replace(/^# /, "").split(",");
  const [px, sv, st] = ["pxname", "svname", "status"].map((k) => head.indexOf(k));
  const out: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const f = l.split(",");
    if (f[px] === "kube-apiserver" && f[sv] !== "BACKEND" && f[sv] !== "FRONTEND") out[f[sv]] = f[st];
  }
  return out;
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function get(port: number, pathName: string, tls: boolean): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const mod = tls ? https : http;
    const req = mod.get(
      { host: "127.0.0.1", port, path: pathName, agent: false, rejectUnauthorized: false, servername: tls ? "kubernetes" : undefined, timeout: 3000 } as https.RequestOptions,
      (r) => {
        let body = "";
        r.on("data", (d) => (body += d));
        r.on("end", () => res({ status: r.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", rej);
  });
}

describeReal("real HAProxy with the rendered haproxy.cfg", why, () => {
  let dir: string;
  let haproxy: ChildProcess | undefined;
  let haproxyLog = "";
  let r: Resolved;
  const backends: Backend[] = [];
  const figures: string[] = [];
  const byName = (n: string) => backends.find((b) => b.name === n)!;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lb-live-"));
    const ca = await makeCa("kubernetes");
    const otherCa = await makeCa("kubernetes"); // same name, different key: must not verify
    const sans = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "cp"];
    backends.push(await startBackend("cp1", await serverCert(ca, "kube-apiserver", sans, ["127.0.0.1"])));
    backends.push(await startBackend("cp2", await serverCert(ca, "kube-apiserver", sans, ["127.0.0.1"])));
    backends.push(await startBackend("cp3", await serverCert(otherCa, "kube-apiserver", sans, ["127.0.0.1"])));
    backends.push(await startBackend("cp4", await serverCert(ca, "kube-apiserver", ["cp4.example"], ["127.0.0.1"])));
    fs.writeFileSync(path.join(dir, "kubernetes-ca.crt"), ca.certPem);

    r = resolve({
      clusterName: "live",
      engine: "haproxy",
      vip: "10.123.0.100",
      vipPrefix: 24,
      interface: "host0",
      virtualRouterId: 51,
      port: await freePort(),
      healthPort: await freePort(),
      lbHosts: [{ name: "lb1", internalAddress: "10.123.0.11" }],
      apiServers: backends.map((b) => ({ name: b.name, address: "127.0.0.1", port: b.port })),
      workers: [],
      paths: {
        caFile: path.join(dir, "kubernetes-ca.crt"),
        statsSocket: path.join(dir, "admin.sock"),
        checkScript: path.join(dir, "check.sh"),
        // chroot and the haproxy user need root; elsewhere HAProxy stays as the invoking user
        ...(isRoot && fs.existsSync("/var/lib/haproxy") ? {} : { chroot: null }),
      },
      ...(isRoot ? {} : { runAs: null }),
    });
    const cfg = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(cfg, renderHaproxyConfig(r));
    fs.writeFileSync(r.paths.checkScript, renderCheckScript(r), { mode: 0o755 });
    const check = spawnSync("haproxy", ["-c", "-f", cfg], { encoding: "utf8" });
    expect(check.status, check.stderr).toBe(0);

    const t0 = Date.now();
    haproxy = spawn("haproxy", ["-db", "-f", cfg], { stdio: ["ignore", "pipe", "pipe"] });
    haproxy.stdout!.on("data", (d) => (haproxyLog += d));
    haproxy.stderr!.on("data", (d) => (haproxyLog += d));
    await waitFor("the health endpoint", 5000, async () => {
      if (haproxy!.exitCode !== null) throw new Error(`haproxy exited ${haproxy!.exitCode}: ${haproxyLog}`);
      return (await get(r.healthPort, "/healthz", false)).status === 200 ? true : undefined;
    }).catch((e) => {
      throw new Error(`${e.message}\nhaproxy output: ${haproxyLog}`);
    });
    const states = await waitFor("cp1/cp2 UP and cp3/cp4 DOWN", 8000, async () => {
      const s = await serverStates(r.paths.statsSocket);
      return s.cp1 === "UP" && s.cp2 === "UP" && s.cp3 === "DOWN" && s.cp4 === "DOWN" ? s : undefined;
    });
    figures.push(`start → unverifiable backends DOWN (and verified ones UP): ${Date.now() - t0} ms (${JSON.stringify(states)})`);
  }, 30_000);

  afterAll(async () => {
    if (haproxy?.pid && haproxy.exitCode === null) haproxy.kill("SIGTERM");
    for (const b of backends) await stopBackend(b).catch(() => undefined);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (figures.length) console.log(`HAProxy ${spawnSync("haproxy", ["-v"], { encoding: "utf8" }).stdout.split("\n")[0]}\n  ${figures.join("\n  ")}`);
  });

  it("sends traffic only to the verified backends, round-robin, and checks with SNI kubernetes", async () => {
    const seen: Record<string, number> = {};
    for (let i = 0; i < 24; i++) {
      const res = await get(r.port, "/whoami", true);
      expect(res.status).toBe(200);
      seen[res.body] = (seen[res.body] ?? 0) + 1;
    }
    figures.push(`24 requests through the frontend: ${JSON.stringify(seen)}`);
    expect(Object.keys(seen).sort()).toEqual(["cp1", "cp2"]);
    expect(Math.abs(seen.cp1 - seen.cp2)).toBeLessThanOrEqual(2);
    for (const n of ["cp1", "cp2"]) expect([...byName(n).checkSni]).toEqual(["kubernetes"]);
    // the bad ones never got as far as an HTTP request: the TLS handshake was refused
    expect(byName("cp3").checks).toBe(0);
    expect(byName("cp4").checks).toBe(0);
  });

  it("marks a stopped API server (refused) and a hung one (never answers /readyz) DOWN within 6 s", async () => {
    const t0 = Date.now();
    byName("cp1").hang = true; // accepts connections, never answers the check
    await stopBackend(byName("cp2")); // connection refused
    await waitFor("cp2 DOWN", 8000, async () => ((await serverStates(r.paths.statsSocket)).cp2?.startsWith("DOWN") ? true : undefined));
    const refused = Date.now() - t0;
    // while cp1 is still UP (its checks are timing out), it takes all the traffic
    for (let i = 0; i < 6; i++) expect((await get(r.port, "/whoami", true)).body).toBe("cp1");
    await waitFor("cp1 DOWN", 8000, async () => ((await serverStates(r.paths.statsSocket)).cp1?.startsWith("DOWN") ? true : undefined));
    const hung = Date.now() - t0;
    figures.push(`stopped backend (connection refused) marked DOWN after ${refused} ms`, `hung backend (check timeout) marked DOWN after ${hung} ms`);
    expect(refused).toBeLessThan(6000);
    expect(hung).toBeLessThan(6000);
  });

  it("with every API server down, the local health endpoint and the keepalived check still pass (no flapping)", async () => {
    const s = await serverStates(r.paths.statsSocket);
    expect(Object.values(s).every((x) => x.startsWith("DOWN"))).toBe(true);
    expect((await get(r.healthPort, "/healthz", false)).status).toBe(200);
    const check = spawnSync("bash", [r.paths.checkScript], { encoding: "utf8", timeout: 5000 });
    expect(check.status, check.stderr).toBe(0);
  });

  it("with HAProxy dead, the keepalived check fails", async () => {
    const exited = new Promise((res) => haproxy!.once("exit", res));
    haproxy!.kill("SIGKILL");
    await exited;
    const check = spawnSync("bash", [r.paths.checkScript], { encoding: "utf8", timeout: 5000 });
    expect(check.status).not.toBe(0);
    figures.push("check script: exit 0 with all backends DOWN, exit " + check.status + " with HAProxy killed");
  });
});
