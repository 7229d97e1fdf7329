/**
 * render.ts on its own: the member config, the unit, the scripts' syntax, and the parts of the
 * scripts that can run here without systemd: install (preinstalled, apt check, download from a
 * local HTTP server), certificate validation before anything is swapped in, and the health
 * checks' reporting (against a fake etcdctl).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parse } from "yaml";
import {
  DEFAULT_PATHS,
  etcdBinary,
  initialCluster,
  initialClusterToken,
  majorMinor,
  memberConfig,
  memberStamp,
  renderConfig,
  renderHealthGateScript,
  renderInstallScript,
  renderMemberDeleteScript,
  renderMemberScript,
  renderUnit,
  type EtcdPaths,
} from "../../components/etcd/render";
import type { EtcdSpec } from "../../components/config/spec";
import { DEFAULT_ETCD_DOWNLOAD_URL } from "../../components/config/defaults";
import { encodeStdin, renderScript } from "../../components/remote/shell";
import { certRequest, locallySignedCert, privateKey, selfSignedCert } from "../harness/crypto";
import { describeReal } from "../harness/real";

const members = [
  { name: "etcd2", internalAddress: "10.0.0.22" },
  { name: "etcd1", internalAddress: "10.0.0.21" },
  { name: "etcd3", internalAddress: "10.0.0.23" },
];
const cfgInput = { member: members[1], members, clusterName: "prod", dataDir: "/var/lib/etcd" };
const etcdSpec = (o: Partial<EtcdSpec> = {}): EtcdSpec => ({ version: "3.6.6", source: "download", downloadUrl: DEFAULT_ETCD_DOWNLOAD_URL, dataDir: "/var/lib/etcd", heartbeatIntervalMs: 100, electionTimeoutMs: 1000, deployment: "systemd", ...o });

/** Run a script body the way a step does (strict mode, helpers, stdin payloads). */
function runBody(body: string, o: { stdin?: string[]; env?: Record<string, string>; bashEnv?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = renderScript({ host: "h1", step: "test", body, stdinItems: o.stdin?.length || undefined });
  return new Promise((resolve) => {
    const p = spawn("bash", ["-c", script], { env: { ...process.env, ...(o.bashEnv ? { BASH_ENV: o.bashEnv } : {}), ...(o.env ?? {}) } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(o.stdin ? encodeStdin(o.stdin) : "");
  });
}
const bashSyntax = (body: string) => spawnSync("bash", ["-n"], { input: renderScript({ host: "h", step: "s", body, stdinItems: 3 }) });
const has = (c: string) => spawnSync("bash", ["-c", `command -v ${c}`]).status === 0;
const isRoot = process.getuid?.() === 0;
const etcdUser = spawnSync("getent", ["passwd", "etcd"]).status === 0;

describe("member configuration", () => {
  test("exactly the keys etcd 3.4–3.7 all understand (etcd ignores misspelt keys silently)", () => {
    const cfg = memberConfig(cfgInput);
    expect(Object.keys(cfg).sort()).toEqual(
      [
        "name",
        "data-dir",
        "listen-peer-urls",
        "listen-client-urls",
        "initial-advertise-peer-urls",
        "advertise-client-urls",
        "initial-cluster",
        "initial-cluster-state",
        "initial-cluster-token",
        "client-transport-security",
        "peer-transport-security",
        "heartbeat-interval",
        "election-timeout",
        "snapshot-count",
        "quota-backend-bytes",
        "auto-compaction-mode",
        "auto-compaction-retention",
        "logger",
        "log-level",
        "log-outputs",
      ].sort(),
    );
    for (const side of ["client-transport-security", "peer-transport-security"])
      expect(Object.keys(cfg[side] as object).sort()).toEqual(["auto-tls", "cert-file", "client-cert-auth", "key-file", "trusted-ca-file"]);
    expect(JSON.stringify(cfg)).not.toMatch(/enable-v2|experimental|"debug"/);
  });

  test("rendered YAML: members sorted by name, TLS files, strings stay strings", () => {
    const text = renderConfig(cfgInput);
    expect(text.split("\n")[0]).toMatch(/^# etcd member etcd1 of hakube cluster prod/);
    const cfg = parse(text);
    expect(cfg["initial-cluster"]).toBe("etcd1=https://10.0.0.21:2380,etcd2=https://10.0.0.22:2380,etcd3=https://10.0.0.23:2380");
    expect(cfg["initial-cluster-token"]).toBe("hakube-prod-etcd");
    expect(cfg["auto-compaction-retention"]).toBe("1h");
    expect(typeof cfg["election-timeout"]).toBe("number");
    expect(cfg["election-timeout"]).toBeGreaterThanOrEqual(5 * cfg["heartbeat-interval"]);
    expect(cfg["log-outputs"]).toEqual(["stderr"]);
    expect(cfg["client-transport-security"]["cert-file"]).toBe("/etc/etcd/pki/server.crt");
    expect(cfg["peer-transport-security"]["key-file"]).toBe("/etc/etcd/pki/peer.key");
    expect(memberConfig({ ...cfgInput, listenLocalhost: false })["listen-client-urls"]).toBe("https://10.0.0.21:2379");
    expect(initialCluster([...members].reverse())).toBe(initialCluster(members));
    expect(initialClusterToken("a-b")).toBe("hakube-a-b-etcd");
    expect(() => majorMinor("x")).toThrow(/major\.minor/);
  });

  test("stamp: changes with any content, stable otherwise", () => {
    const base = { config: "c", unit: "u", caCertPem: "ca", serverCertPem: "s", peerCertPem: "p", healthcheckCertPem: "h", source: "apt" as const, version: "3.4.23" };
    expect(memberStamp(base)).toBe(memberStamp({ ...base }));
    for (const [k, v] of Object.entries({ config: "c2", unit: "u2", peerCertPem: "p2", version: "3.4.22", source: "download" }))
      expect(memberStamp({ ...base, [k]: v })).not.toBe(memberStamp(base));
    // no ambiguity between neighbouring parts
    expect(memberStamp({ ...base, config: "cu", unit: "" })).not.toBe(memberStamp(base));
  });
});

describe("systemd unit", () => {
  test("Type=notify, Restart=always, LimitNOFILE, the etcd user, the binary of the source", () => {
    const unit = renderUnit({ member: "etcd1", address: "10.0.0.21", clusterName: "prod", source: "download", version: "3.6.6" });
    for (const line of ["Type=notify", "Restart=always", "LimitNOFILE=65536", "User=etcd", "TimeoutStartSec=infinity", "WantedBy=multi-user.target"])
      expect(unit.split("\n")).toContain(line);
    expect(unit).toContain("ExecStart=/usr/local/bin/etcd --config-file=/etc/etcd/etcd.conf.yml");
    expect(unit).not.toContain("ETCD_UNSUPPORTED_ARCH");
    // at boot, etcd waits for its address (a member started before networkd added it could not bind)
    expect(unit).toMatch(/^ExecStartPre=-\/usr\/bin\/timeout 30 .*" 10\.0\.0\.21\/".*$/m);
    expect(renderUnit({ member: "e", address: "10.0.0.9", clusterName: "c", source: "apt", version: "3.4.23" })).toContain("Environment=ETCD_UNSUPPORTED_ARCH=arm64");
    expect(etcdBinary("apt")).toBe("/usr/bin/etcd");
    expect(etcdBinary("preinstalled")).toBe("etcd");
    if (has("systemd-analyze")) {
      // (only where systemd is installed) the unit parses
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-unit-"));
      fs.writeFileSync(path.join(dir, "etcd.service"), unit.replace("/usr/local/bin/etcd", "/bin/true"));
      const r = spawnSync("systemd-analyze", ["verify", path.join(dir, "etcd.service")], { encoding: "utf8" });
      expect(r.stderr).not.toMatch(/Unknown (key|section)|Failed to parse/);
      fs.rmSync(dir, { recursive: true });
    }
  });
});

describe("script syntax (bash -n) of every rendered script", () => {
  const pems = { caCertPem: "CA\n", serverCertPem: "S\n", peerCertPem: "P\n", healthcheckCertPem: "H\n" };
  const scripts: Record<string, string> = {
    "install download": renderInstallScript({ etcd: etcdSpec() }),
    "install download sha256": renderInstallScript({ etcd: etcdSpec({ sha256: { amd64: "a".repeat(64) } }) }),
    "install apt": renderInstallScript({ etcd: etcdSpec({ source: "apt", version: "3.4.23" }) }),
    "install preinstalled": renderInstallScript({ etcd: etcdSpec({ source: "preinstalled" }) }),
    member: renderMemberScript({ ...cfgInput, owner: "etcd-member-etcd1", config: "x: 1\n", unit: "[Unit]\n", ...pems, stamp: "s", version: "3.6.6" }),
    "member (single)": renderMemberScript({ ...cfgInput, members: [members[1]], owner: "o", config: "x: 1\n", unit: "[Unit]\n", ...pems, stamp: "s", version: "3.6.6" }),
    delete: renderMemberDeleteScript({ owner: "o", dataDir: "/var/lib/etcd" }),
    gate: renderHealthGateScript({ members, clusterName: "prod", stamps: { etcd1: "a" } }),
  };
  for (const [name, body] of Object.entries(scripts))
    test(name, () => {
      const r = bashSyntax(body);
      expect(r.stderr.toString()).toBe("");
      expect(r.status).toBe(0);
    });
});

const needRoot = (cmds: string[], user = true) => (!isRoot ? "needs root" : user && !etcdUser ? "there is no etcd user (the etcd-server package creates it)" : cmds.filter((c) => !has(c)).map((c) => `${c} is not installed`).join(", ") || undefined);
describeReal("install step, run here (needs root, the etcd user and Debian's etcd)", needRoot(["etcd", "etcdctl"]), () => {
  test("preinstalled: the configured major.minor passes, another fails clearly", async () => {
    const ok = await runBody(renderInstallScript({ etcd: etcdSpec({ source: "preinstalled", version: "3.4.1" }) }));
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toMatch(/^ok: preinstalled etcd 3\.4\.\d+ \(\/usr\/bin\/etcd\)$/m);
    const bad = await runBody(renderInstallScript({ etcd: etcdSpec({ source: "preinstalled", version: "3.6.6" }) }));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^hakube: h1: test: preinstalled etcd \(\/usr\/bin\/etcd\) reports version 3\.4\.\d+, but etcd\.version is 3\.6\.6 \(needs 3\.6\.x\)$/m);
  });

  test("apt: an installed package of another minor fails clearly (nothing installed or removed)", async () => {
    const bad = await runBody(renderInstallScript({ etcd: etcdSpec({ source: "apt", version: "3.5.21" }) }));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/the distribution's etcd-server is 3\.4\.\d+( \(apt's candidate; nothing installed\))?, but etcd\.version is 3\.5\.21 \(needs 3\.5\.x\): set etcd\.version to match, or use etcd\.source download/);
  });
});

describeReal("install step, download source, from a local HTTP server", needRoot(["curl"]), () => {
  let server: http.Server;
  let base: string;
  let tarball: Buffer;
  const requests: string[] = [];
  const arch = (() => {
    const a = spawnSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).stdout.trim() || os.arch();
    return a === "x64" ? "amd64" : a;
  })();
  let url = "";

  beforeAll(async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-etcd-dl-"));
    const dir = path.join(base, "src", `etcd-v9.9.9-linux-${arch}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "etcd"), '#!/bin/sh\necho "etcd Version: 9.9.9"\necho "Git SHA: test"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "etcdctl"), '#!/bin/sh\necho "etcdctl version: 9.9.9"\necho "API version: 3.6"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "etcdutl"), '#!/bin/sh\necho "etcdutl version: 9.9.9"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "README.md"), "test\n");
    spawnSync("tar", ["-czf", path.join(base, "etcd.tar.gz"), "-C", path.join(base, "src"), `etcd-v9.9.9-linux-${arch}`]);
    tarball = fs.readFileSync(path.join(base, "etcd.tar.gz"));
    server = http.createServer((req, res) => {
      requests.push(req.url ?? "");
      if (req.url === `/v9.9.9/etcd-v9.9.9-linux-${arch}.tar.gz`) res.end(tarball);
      else if (req.url === `/v9.9.7/etcd-v9.9.7-linux-${arch}.tar.gz`) res.end("<html>a login page</html>");
      else res.writeHead(404).end("not found");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v{version}/etcd-v{version}-linux-{arch}.tar.gz`;
  });
  afterAll(() => {
    server?.close();
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  const paths = (): EtcdPaths => ({ ...DEFAULT_PATHS, binDir: path.join(base, "bin") });
  const sha = () => createHash("sha256").update(tarball).digest("hex");

  test("fills {version}/{arch}, verifies sha256, installs etcd, etcdctl, etcdutl; a second run downloads nothing", async () => {
    const script = renderInstallScript({ etcd: etcdSpec({ version: "9.9.9", downloadUrl: url, sha256: { [arch]: sha().toUpperCase() } }), paths: paths() });
    const r1 = await runBody(script);
    expect(r1.stderr).toBe("");
    expect(r1.stdout).toContain(`installed etcd 9.9.9 (${arch}) in ${paths().binDir}`);
    expect(requests).toEqual([`/v9.9.9/etcd-v9.9.9-linux-${arch}.tar.gz`]);
    for (const b of ["etcd", "etcdctl", "etcdutl"]) {
      const st = fs.statSync(path.join(paths().binDir, b));
      expect((st.mode & 0o777).toString(8)).toBe("755");
    }
    expect(fs.readdirSync(paths().binDir).sort()).toEqual(["etcd", "etcdctl", "etcdutl"]);
    const r2 = await runBody(script);
    expect(r2.stdout).toBe(`ok: etcd 9.9.9 is installed in ${paths().binDir}\n`);
    expect(requests).toHaveLength(1);
  });

  test("a wrong checksum, a missing arch, a missing file, a wrong version, not a tarball: clear failures, nothing installed", async () => {
    const dir = path.join(base, "bin2");
    const p = { ...paths(), binDir: dir };
    const wrong = await runBody(renderInstallScript({ etcd: etcdSpec({ version: "9.9.9", downloadUrl: url, sha256: { [arch]: "0".repeat(64) } }), paths: p }));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(new RegExp(`^hakube: h1: test: sha256 of http://127\\.0\\.0\\.1:\\d+/v9\\.9\\.9/etcd-v9\\.9\\.9-linux-${arch}\\.tar\\.gz is ${sha()}, etcd\\.sha256\\.${arch} says 0{64}$`, "m"));
    const other = arch === "amd64" ? "arm64" : "amd64";
    const noArch = await runBody(renderInstallScript({ etcd: etcdSpec({ version: "9.9.9", downloadUrl: url, sha256: { [other]: sha() } }), paths: p }));
    expect(noArch.code).toBe(1);
    expect(noArch.stderr).toContain(`etcd.sha256 has no checksum for ${arch} (it has: ${other})`);
    const missing = await runBody(renderInstallScript({ etcd: etcdSpec({ version: "9.9.8", downloadUrl: url }), paths: p }));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/download of http:\/\/127\.0\.0\.1:\d+\/v9\.9\.8\/etcd-v9\.9\.8-linux-\w+\.tar\.gz failed/);
    const version = await runBody(renderInstallScript({ etcd: etcdSpec({ version: "9.9.8", downloadUrl: url.replace(/\{version\}/g, "9.9.9") }), paths: p }));
    expect(version.code).toBe(1);
    expect(version.stderr).toContain("reports version 9.9.9, expected 9.9.8");
    const html = await runBody(renderInstallScript({ etcd: etcdSpec({ version: "9.9.7", downloadUrl: url }), paths: p }));
    expect(html.code).toBe(1);
    expect(html.stderr).toMatch(/etcd-v9\.9\.7-linux-\w+\.tar\.gz is not a \.tar\.gz archive$/m);
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describeReal("member step: certificates are validated before anything is swapped in", needRoot(["openssl"], false), () => {
  let base: string;
  let pki: Record<string, string>;
  beforeAll(async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-etcd-val-"));
    const ca = async (cn: string) => {
      const key = await privateKey({ algorithm: "ECDSA", ecdsaCurve: "P256" });
      const cert = await selfSignedCert({ privateKeyPem: key.privateKeyPem, subject: { commonName: cn }, isCaCertificate: true, validityPeriodHours: 24, allowedUses: ["cert_signing", "digital_signature"] });
      return { key: key.privateKeyPem, cert: cert.certPem };
    };
    const leaf = async (c: { key: string; cert: string }, cn: string, uses: string[]) => {
      const key = await privateKey({ algorithm: "ECDSA", ecdsaCurve: "P256" });
      const csr = await certRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName: cn }, ipAddresses: ["10.0.0.21"] });
      const cert = await locallySignedCert({ certRequestPem: csr.certRequestPem, caCertPem: c.cert, caPrivateKeyPem: c.key, validityPeriodHours: 24, allowedUses: ["digital_signature", ...uses] });
      return { key: key.privateKeyPem, cert: cert.certPem };
    };
    const a = await ca("etcd-ca");
    const b = await ca("other-ca");
    const server = await leaf(a, "etcd1", ["server_auth", "client_auth"]);
    const peer = await leaf(a, "etcd1", ["server_auth", "client_auth"]);
    const hc = await leaf(a, "hc", ["client_auth"]);
    const foreign = await leaf(b, "etcd1", ["server_auth", "client_auth"]);
    const clientOnly = await leaf(a, "etcd1", ["client_auth"]);
    pki = {
      ca: a.cert,
      server: server.cert,
      serverKey: server.key,
      peer: peer.cert,
      peerKey: peer.key,
      hc: hc.cert,
      hcKey: hc.key,
      foreign: foreign.cert,
      foreignKey: foreign.key,
      clientOnly: clientOnly.cert,
      clientOnlyKey: clientOnly.key,
    };
  });
  afterAll(() => {
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  const attempt = async (server: string, serverKey: string) => {
    const root = fs.mkdtempSync(path.join(base, "host-"));
    const paths: EtcdPaths = { configDir: `${root}/etc`, pkiDir: `${root}/etc/pki`, configFile: `${root}/etc/etcd.conf.yml`, unitFile: `${root}/etcd.service`, stateDir: `${root}/state`, binDir: `${root}/bin`, distBinDir: `${root}/bin` };
    const body = renderMemberScript({
      ...cfgInput,
      dataDir: `${root}/data`,
      owner: "o",
      config: "x: 1\n",
      unit: "[Unit]\n",
      caCertPem: pki.ca,
      serverCertPem: server,
      peerCertPem: pki.peer,
      healthcheckCertPem: pki.hc,
      stamp: "s",
      version: "3.6.6",
      paths,
    });
    const r = await runBody(body, { stdin: [serverKey, pki.peerKey, pki.hcKey] });
    return { ...r, touched: fs.readdirSync(root) };
  };

  test("a key that is not the certificate's", async () => {
    const r = await attempt(pki.server, pki.peerKey);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hakube: h1: test: server\.key is not the key of server\.crt$/m);
    expect(r.touched).toEqual([]);
  });
  test("a certificate from another CA", async () => {
    const r = await attempt(pki.foreign, pki.foreignKey);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hakube: h1: test: server\.crt does not verify against the etcd CA for sslserver: .*unable to get local issuer certificate/m);
    expect(r.touched).toEqual([]);
  });
  test("a server certificate without serverAuth", async () => {
    const r = await attempt(pki.clientOnly, pki.clientOnlyKey);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/server\.crt does not verify against the etcd CA for sslserver: .*(unsuitable|unsupported) certificate purpose/);
    expect(r.touched).toEqual([]);
  });
});

describe("health checks name the members that are not healthy (fake etcdctl)", () => {
  const bashEnv = path.join(__dirname, "fake-etcdctl.sh");
  const gate = renderHealthGateScript({ members, clusterName: "prod", stamps: {}, timeoutSeconds: 1 });
  const line = (id: string, name: string, ip: string, joined = true) =>
    `${id}, started, ${name}, https://${ip}:2380, ${joined ? `https://${ip}:2379,https://127.0.0.1:2379` : ""}, false`;
  const list = [line("a1", "etcd1", "10.0.0.21"), line("a2", "etcd2", "10.0.0.22"), line("a3", "etcd3", "10.0.0.23")];
  const healthy = (ip: string) => `https://${ip}:2379 is healthy: successfully committed proposal: took = 2.1ms`;

  test("all joined and healthy: the gate passes and prints the status", async () => {
    const r = await runBody(gate, { bashEnv, env: { FAKE_MEMBER_LIST: list.join("\n"), FAKE_HEALTH: ["10.0.0.21", "10.0.0.22", "10.0.0.23"].map(healthy).join("\n") } });
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^etcd cluster healthy \(3 members\) after \d+s\n\| ENDPOINT \| IS LEADER \|\n$/);
  });

  test("one not joined, one unhealthy, one unknown member: all named", async () => {
    const r = await runBody(gate, {
      bashEnv,
      env: {
        FAKE_MEMBER_LIST: [list[0], list[1], line("a3", "etcd3", "10.0.0.23", false), line("a9", "stray", "10.0.0.99")].join("\n"),
        FAKE_HEALTH: [
          healthy("10.0.0.21"),
          "https://10.0.0.22:2379 is unhealthy: failed to commit proposal: context deadline exceeded",
          healthy("10.0.0.99"),
          "Error: unhealthy cluster",
        ].join("\n"),
        FAKE_HEALTH_RC: "1",
      },
    });
    expect(r.code).toBe(1);
    const msg = r.stderr.trim();
    expect(msg).toMatch(/^hakube: h1: test: health gate: etcd not healthy after 1s: /);
    expect(msg).toContain("etcd3 has not joined the cluster yet");
    expect(msg).toContain("the cluster has a member the configuration does not list (https://10.0.0.99:2380)");
    expect(msg).toContain("etcd2 (https://10.0.0.22:2379): failed to commit proposal: context deadline exceeded");
    expect(msg).not.toMatch(/etcd1/);
  });

  test("no member answers", async () => {
    const r = await runBody(gate, { bashEnv, env: { FAKE_MEMBER_LIST: "", FAKE_HEALTH: "" } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^hakube: h1: test: health gate: etcd not healthy after 1s: no member answers \(member list: Error: context deadline exceeded\)$/);
  });
});

describe("install step, source apt, against fake apt/dpkg/etcd (runs anywhere: nothing is installed)", () => {
  // The scripts set their own PATH: the fakes are shell functions (BASH_ENV), which win over PATH,
  // and the distribution's binaries live in paths.distBinDir. Every apt/dpkg/systemctl call is logged.
  let dir: string;
  let bashEnv: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-etcd-apt-"));
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    // FAKE_INSTALLED=1: both packages installed; FAKE_CANDIDATE: apt's candidate; FAKE_ETCD: what etcd --version says
    bashEnv = path.join(dir, "fakes.sh");
    fs.writeFileSync(
      bashEnv,
      [
        'dpkg-query() { echo "dpkg-query $*" >> "$FAKE_LOG"; [ "${FAKE_INSTALLED:-}" = 1 ] && { echo installed; return 0; }; return 1; }',
        'apt-cache() { printf \'etcd-server:\\n  Installed: (none)\\n  Candidate: %s\\n\' "${FAKE_CANDIDATE:-(none)}"; }',
        'apt-get() { echo "apt-get $*" >> "$FAKE_LOG"; }',
        'systemctl() { echo "systemctl $*" >> "$FAKE_LOG"; }',
        "getent() { return 0; }  # the etcd user exists (that part is not under test)",
        "",
      ].join("\n"),
    );
    const fake = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    fake("etcd", '[ -n "$FAKE_ETCD" ] && echo "etcd Version: $FAKE_ETCD"; echo "Git SHA: fake"');
    fake("etcdctl", "exit 0");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = async (version: string | undefined, env: Record<string, string>) => {
    const log = path.join(dir, `log-${Math.random().toString(36).slice(2)}`);
    fs.writeFileSync(log, "");
    const script = renderInstallScript({ etcd: etcdSpec({ source: "apt", version }), paths: { ...DEFAULT_PATHS, distBinDir: path.join(dir, "bin"), unitFile: path.join(dir, "none.service") } });
    const r = await runBody(script, { bashEnv, env: { FAKE_LOG: log, ...env } });
    const calls = fs.readFileSync(log, "utf8");
    expect(calls, "the fakes ran (not this machine's apt)").toMatch(/^dpkg-query /m);
    return { ...r, log: calls.split("\n").filter((l) => !l.startsWith("dpkg-query ")).join("\n") };
  };

  test("etcd.version not set: a candidate older than kubeadm's minimum fails on the host before anything is installed", async () => {
    const r = await run(undefined, { FAKE_CANDIDATE: "3.4.23-4+b4" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^hakube: h1: test: the distribution's etcd-server is 3\.4\.23 \(apt's candidate; nothing installed\), older than 3\.5\.24, the oldest external etcd kubeadm accepts: use etcd\.source download \(etcd 3\.6\.16 by default\), or set etcd\.version to 3\.4\.23 for an etcd-only cluster$/m,
    );
    expect(r.log).not.toMatch(/install/);
  });

  test("etcd.version not set: a new enough distribution etcd is installed and accepted (epoch and revision ignored)", async () => {
    const r = await run(undefined, { FAKE_CANDIDATE: "1:3.5.24-1+b2", FAKE_ETCD: "3.5.24" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.log).toMatch(/^apt-get .*install --no-install-recommends etcd-server etcd-client$/m);
    expect(r.stdout).toMatch(/^ok: etcd 3\.5\.24 from the distribution/m);
    const newer = await run(undefined, { FAKE_CANDIDATE: "3.6.5-1", FAKE_ETCD: "3.6.5" });
    expect(newer.code).toBe(0);
  });

  test("etcd.version not set: an installed etcd that is too old (or unreadable) fails, naming the host", async () => {
    const old = await run(undefined, { FAKE_INSTALLED: "1", FAKE_ETCD: "3.5.23" });
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/^hakube: h1: test: the distribution's etcd-server is 3\.5\.23, older than 3\.5\.24/m);
    expect(old.log).toBe("");
    const none = await run(undefined, { FAKE_INSTALLED: "1" });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^hakube: h1: test: the distribution's etcd-server is unknown, older than 3\.5\.24/m);
  });

  test("etcd.version set: a candidate of another minor fails before anything is installed", async () => {
    const r = await run("3.5.21", { FAKE_CANDIDATE: "3.4.23-4+b4" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hakube: h1: test: the distribution's etcd-server is 3\.4\.23 \(apt's candidate; nothing installed\), but etcd\.version is 3\.5\.21 \(needs 3\.5\.x\)/m);
    expect(r.log).not.toMatch(/install/);
    const ok = await run("3.4.23", { FAKE_CANDIDATE: "3.4.23-4+b4", FAKE_ETCD: "3.4.23" });
    expect(ok.code).toBe(0);
    expect(ok.log).toMatch(/install --no-install-recommends etcd-server etcd-client/);
  });
});

describe("etcd.version not set (source apt): unit, stamp and rolling-restart check take the distribution's", () => {
  test("no 3.4-only environment, a stamp of its own, the restart check reads the installed binary", () => {
    const unit = renderUnit({ member: "e", address: "10.0.0.9", clusterName: "c", source: "apt", version: undefined });
    expect(unit).not.toContain("ETCD_UNSUPPORTED_ARCH");
    expect(unit).toContain("ExecStart=/usr/bin/etcd --config-file=");
    const base = { config: "c", unit: "u", caCertPem: "ca", serverCertPem: "s", peerCertPem: "p", healthcheckCertPem: "h", source: "apt" as const };
    expect(memberStamp({ ...base, version: undefined })).not.toBe(memberStamp({ ...base, version: "3.5.24" }));
    const pems = { caCertPem: "CA\n", serverCertPem: "S\n", peerCertPem: "P\n", healthcheckCertPem: "H\n" };
    const script = renderMemberScript({ ...cfgInput, owner: "o", config: "x: 1\n", unit: "[Unit]\n", ...pems, stamp: "s", version: undefined });
    expect(script).toMatch(/^ {2}target=\$\(\{ \/usr\/bin\/etcd --version .*split\(\$3, p, "\."\)/m);
    expect(bashSyntax(script).status).toBe(0);
    expect(bashSyntax(renderInstallScript({ etcd: etcdSpec({ source: "apt", version: undefined }) })).status).toBe(0);
  });
});
