/**
 * The load balancer's rendered files and steps: pure properties, then the real validators
 * (haproxy -c, nginx -t, keepalived -t, through the same `lb_validate` bash the hosts run) on
 * every variant, and proof that each validator rejects a broken file.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  APISERVER_CHECK,
  apiServerMarkDownBoundMs,
  CHECK,
  effectivePriorities,
  engineDeathDetectionBoundMs,
  engineHangDetectionBoundMs,
  HOLDER_BONUS,
  MAX_LOAD_BALANCERS,
  renderNotifyScript,
  LB_HEALTH_PORT,
  masterDownIntervalMs,
  renderCheckScript,
  renderEngineConfig,
  renderKeepalivedConfig,
  renderKeepalivedDeleteStep,
  renderKeepalivedStep,
  renderPackagesStep,
  renderProxyDeleteStep,
  renderProxyStep,
  resolve,
  VALIDATE_FUNCTIONS,
  vrrpPriority,
  VRRP_ADVERT_SECONDS,
  type LbInput,
} from "../../components/loadbalancer/render";
import { wrapScript } from "../../components/remote/shell";
import { allVariants, bash, makeCa, missing, variantInput, versionOf, type Variant } from "./fixtures";
import { describeReal } from "../harness/real";

const base = (): LbInput => variantInput({ id: "x", engine: "haproxy", vrrp: "unicast", ingress: true, lbCount: 2, colocated: false });
const FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

describe("failover parameters", () => {
  it("replaces a crashed master within 1 s (VRRPv3 master-down interval at every priority in use)", () => {
    const rows = [0, 1, 2].map((i) => ({ priority: vrrpPriority(i), masterDownMs: masterDownIntervalMs(vrrpPriority(i)) }));
    console.log(`advert ${VRRP_ADVERT_SECONDS} s → master-down interval: ${rows.map((r) => `priority ${r.priority}: ${r.masterDownMs.toFixed(1)} ms`).join(", ")}`);
    for (const r of rows) {
      expect(r.masterDownMs).toBeLessThanOrEqual(800); // + VIP add and gratuitous ARP, measured ≈ 0.7 s in the reference
      expect(r.masterDownMs).toBeGreaterThanOrEqual(3 * VRRP_ADVERT_SECONDS * 1000); // three lost adverts, not one: no flapping on a single drop
    }
    expect(masterDownIntervalMs(200)).toBeCloseTo(600 + (56 * 200) / 256, 6);
  });

  it("marks a dead API server down within 6 s, refused or silent", () => {
    const b = apiServerMarkDownBoundMs();
    console.log(`HAProxy check bounds: refused ≤ ${b.refused} ms, silent (powered off) ≤ ${b.silent} ms (inter ${APISERVER_CHECK.interMs} ms, fastinter ${APISERVER_CHECK.fastinterMs} ms, timeout ${APISERVER_CHECK.timeoutMs} ms, fall ${APISERVER_CHECK.fall})`);
    expect(b.refused).toBeLessThan(6000);
    expect(b.silent).toBeLessThan(6000);
  });

  it("notices a dead engine within a few seconds with whole-second script intervals", () => {
    expect(Number.isInteger(CHECK.interval) && CHECK.interval >= 1).toBe(true);
    expect(Number.isInteger(CHECK.timeout)).toBe(true);
    expect(engineDeathDetectionBoundMs()).toBeLessThanOrEqual(3000); // stopped: refused at once
    expect(engineHangDetectionBoundMs()).toBeLessThanOrEqual(6000); // hung: each run waits readTimeoutS
    // the script's own wait ends before keepalived's timeout (the script decides, no SIGTERM);
    // the timeout is well above one interval (a busy host's slow fork is not a failure)
    expect(CHECK.readTimeoutS).toBeLessThan(CHECK.timeout);
    expect(CHECK.timeout).toBeGreaterThanOrEqual(4 * CHECK.interval);
  });

  it("load can reorder priorities but never leave the VIP unheld; a sick holder falls below every healthy backup", () => {
    const base = Array.from({ length: MAX_LOAD_BALANCERS }, (_, i) => vrrpPriority(i));
    expect(Math.max(...base) + HOLDER_BONUS).toBeLessThanOrEqual(254);
    for (const h of base)
      for (const b of base) {
        if (h === b) continue;
        const H = effectivePriorities(h);
        const B = effectivePriorities(b);
        expect(H.holder, `healthy holder ${h} vs healthy backup ${b}: no move (a recovered host does not take the VIP back)`).toBeGreaterThan(B.backup);
        expect(H.sickHolder, `sick holder ${h} vs healthy backup ${b}: the backup preempts`).toBeLessThan(B.backup);
        expect(H.sickHolder, `sick holder ${h} vs sick backup ${b}: no move`).toBeGreaterThan(B.sickBackup);
        expect(H.holder, `healthy holder ${h} vs sick backup ${b}`).toBeGreaterThan(B.sickBackup);
      }
  });

  it("keepalived.conf: weighted check (never FAULT), holder bonus file, notify as root, no nopreempt", () => {
    const k = renderKeepalivedConfig(base(), "lb1");
    expect(k).toContain(`vrrp_script hakube_lb_check {\n    script "/etc/keepalived/hakube-check-lb.sh"\n    interval 1\n    timeout 4\n    fall 2\n    rise 2\n    weight -100\n}`);
    expect(k).toContain(`track_file hakube_holder {\n    file "/run/hakube-keepalived.holder"\n    weight 50\n    init_file 0 overwrite\n}`);
    expect(k).toContain(`    track_script {\n        hakube_lb_check\n    }\n    track_file {\n        hakube_holder\n    }\n    notify "/etc/keepalived/hakube-notify.sh" root\n}`);
    expect(k).toContain("    vrrp_priority -10\n");
    expect(k).not.toMatch(/nopreempt|weight 0\b|\binterval 1\n    timeout 1\n/);
    expect(k).toContain("    state BACKUP\n");
  });

  it("the notify script writes 1 to the holder file while MASTER, 0 on every other state", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lb-notify-"));
    try {
      const r = resolve({ ...base(), paths: { holderFile: `${dir}/holder` } });
      const f = path.join(dir, "notify.sh");
      fs.writeFileSync(f, renderNotifyScript(r), { mode: 0o755 });
      const seen: Record<string, string> = {};
      for (const st of ["MASTER", "BACKUP", "MASTER", "FAULT", "MASTER", "STOP"]) {
        const res = bash(`${f} INSTANCE hakube_dev ${st} 250`);
        expect(res.status, res.stderr).toBe(0);
        seen[st] = fs.readFileSync(`${dir}/holder`, "utf8");
      }
      expect(seen).toEqual({ MASTER: "1\n", BACKUP: "0\n", FAULT: "0\n", STOP: "0\n" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("resolve() checks every value that reaches a config", () => {
  const bad: [string, (i: LbInput) => LbInput, RegExp][] = [
    ["interface with a space", (i) => ({ ...i, interface: "eth0 x" }), /invalid interface/],
    ["upper-case cluster name", (i) => ({ ...i, clusterName: "Dev" }), /invalid cluster name/],
    ["quote in a host name", (i) => ({ ...i, lbHosts: [{ name: "lb'1", internalAddress: "10.0.0.1" }] }), /invalid host name/],
    ["bad address", (i) => ({ ...i, apiServers: [{ name: "cp1", address: "10.0.0.300", port: 6443 }] }), /invalid address of cp1/],
    ["ingress on the API port", (i) => ({ ...i, ingress: { http: { port: i.port, nodePort: 30080 } } }), /port 6443 is used twice/],
    ["frontend on the health port", (i) => ({ ...i, port: LB_HEALTH_PORT }), /port 8404 is used twice/],
    ["VIP is a load balancer", (i) => ({ ...i, vip: i.lbHosts[0].internalAddress }), /invalid vip/],
    ["no API server", (i) => ({ ...i, apiServers: [] }), /no API servers/],
    ["path with a space", (i) => ({ ...i, paths: { caFile: "/etc/x y" } }), /invalid path caFile/],
    ["21 load balancers", (i) => ({ ...i, lbHosts: Array.from({ length: 21 }, (_, k) => ({ name: `lb${k}`, internalAddress: `10.0.1.${k + 1}` })) }), /at most 20/],
  ];
  it.each(bad)("rejects %s", (_what, mutate, re) => {
    expect(() => resolve(mutate(base()))).toThrow(re);
  });
  it("accepts the dev shape", () => {
    const r = resolve(base());
    expect(r.frontendPorts).toEqual([6443, 80, 443]);
    expect(r.lbHosts.map((h) => h.priority)).toEqual([200, 199]);
  });
  it("refuses a CA that is not a certificate (or carries a key)", () => {
    expect(() => renderProxyStep(resolve(base()), "hello")).toThrow(/not a PEM certificate/);
    expect(() => renderProxyStep(resolve(base()), FAKE_CA + "-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----\n")).toThrow(/not a PEM certificate/);
  });
});

describe("rendered files", () => {
  it("the check script probes the local engine only (no pidof, no backend address)", () => {
    for (const engine of ["haproxy", "nginx"] as const) {
      const i = { ...base(), engine };
      const s = renderCheckScript(i);
      expect(s).not.toMatch(/pidof|killall/);
      expect(s).toContain(`/dev/tcp/127.0.0.1/${LB_HEALTH_PORT}`);
      // one ss for every frontend port (not a fork per port), parsed with builtins
      expect(s.match(/\bss -/g)).toHaveLength(1);
      expect(s).toContain(`ss -Hltn '( sport = :6443 or sport = :80 or sport = :443 )'`);
      expect(s).toContain('want=" 6443 80 443 "');
      expect(s).toContain(`read -r -t ${CHECK.readTimeoutS} status`);
      for (const b of [...i.apiServers.map((x) => x.address), ...i.workers.map((x) => x.address), i.vip]) expect(s).not.toContain(b);
    }
  });

  it("multicast leaves out the unicast peers; unicast lists every other load balancer", () => {
    const three = variantInput({ id: "x", engine: "haproxy", vrrp: "unicast", ingress: false, lbCount: 3, colocated: false });
    const k2 = renderKeepalivedConfig(three, "lb2");
    expect(k2).toContain("unicast_src_ip 10.123.0.12\n    unicast_peer {\n        10.123.0.11\n        10.123.0.13\n    }");
    const m = renderKeepalivedConfig({ ...three, vrrp: "multicast" }, "lb2");
    expect(m).not.toMatch(/unicast/);
    expect(m).toContain("priority 199\n");
  });

  it("steps validate before they swap, and reload only through the stamp", () => {
    const r = resolve(base());
    const proxy = renderProxyStep(r, FAKE_CA);
    const order = (s: string, parts: string[]) => parts.map((p) => s.indexOf(p));
    const o1 = order(proxy, ["hakube_put /etc/haproxy/hakube-kubernetes-ca.crt", 'lb_validate haproxy "$candidate"', "hakube_put /etc/haproxy/haproxy.cfg", "lb_apply haproxy", "hakube_retry 30", "lb_stamp /var"]);
    expect(o1.every((x) => x >= 0)).toBe(true);
    expect([...o1].sort((a, b) => a - b)).toEqual(o1);
    expect(proxy).not.toMatch(/systemctl (restart|reload) haproxy\b(?! \|\|)/); // only inside lb_apply
    const ka = renderKeepalivedStep(r, "lb1");
    const o2 = order(ka, ["hakube_put /etc/keepalived/hakube-check-lb.sh", 'lb_validate keepalived "$candidate"', "hakube_put /etc/keepalived/keepalived.conf", "lb_apply keepalived", "lb_vip"]);
    expect(o2.every((x) => x >= 0)).toBe(true);
    expect([...o2].sort((a, b) => a - b)).toEqual(o2);
  });

  it("every step of every variant is valid bash", () => {
    const bodies: [string, string][] = [];
    for (const v of allVariants()) {
      const r = resolve(variantInput(v));
      bodies.push([`${v.id} packages`, renderPackagesStep(r)], [`${v.id} proxy`, renderProxyStep(r, FAKE_CA)], [`${v.id} proxy-delete`, renderProxyDeleteStep(r)]);
      for (const h of r.lbHosts) bodies.push([`${v.id} keepalived ${h.name}`, renderKeepalivedStep(r, h.name)]);
      bodies.push([`${v.id} keepalived-delete`, renderKeepalivedDeleteStep(r)], [`${v.id} check`, renderCheckScript(r)], [`${v.id} notify`, renderNotifyScript(r)]);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lb-bash-"));
    try {
      const files = bodies.map(([id, body], k) => {
        const f = path.join(dir, `${k}.sh`);
        fs.writeFileSync(f, wrapScript({ host: "h", step: "s", user: "root", body }));
        return [id, f] as const;
      });
      const res = bash(files.map(([id, f]) => `bash -n ${f} || echo "SYNTAX ${id}"`).join("\n"));
      expect(res.stdout + res.stderr).toBe("");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/* ------------------------------------------------------------------ real validators */

const why = missing(["haproxy", "nginx", "keepalived"], true);
if (why) console.warn(`[loadbalancer] real validator tests skipped: ${why}`);

describeReal("real validators", why, () => {
  let dir: string;
  const results = new Map<string, string>();
  interface Job {
    id: string;
    kind: "haproxy" | "nginx" | "keepalived" | "haproxy-strict";
    file: string;
  }
  const jobs: Job[] = [];
  const expectFail = new Set<string>();

  function runJobs(list: Job[]) {
    const lines = [
      `hakube_fail() { printf '%s\\n' "$*" >&2; exit 1; }`,
      VALIDATE_FUNCTIONS,
      // keepalived -t needs the VRRP interface: a veth in this throwaway network namespace;
      // nginx -t binds its listen addresses (127.0.0.1 needs lo up)
      "ip link set lo up",
      "ip link add host0 type veth peer name hkpeer0 && ip link set host0 up && ip link set hkpeer0 up",
      "for a in 11 12 13 31 32 33; do ip addr add 10.123.0.$a/24 dev host0; done",
      `check() { local id=$1 kind=$2 file=$3 out; if [ "$kind" = haproxy-strict ]; then out=$(haproxy -c -dW -f "$file" 2>&1) && echo "OK $id" || echo "FAIL $id $(printf '%s' "$out" | tr '\\n' ' ')"; return; fi
  if out=$( (lb_validate "$kind" "$file") 2>&1 ); then echo "OK $id"; else echo "FAIL $id $(printf '%s' "$out" | tr '\\n' ' ')"; fi; }`,
      ...list.map((j) => `check ${j.id} ${j.kind} ${j.file}`),
    ];
    const r = bash(lines.join("\n"), { netns: true, timeoutMs: 60_000 });
    if (r.status !== 0) throw new Error(`validator batch failed: ${r.stderr}`);
    for (const line of r.stdout.split("\n").filter(Boolean)) {
      const [verdict, id, ...msg] = line.split(" ");
      results.set(id, verdict === "OK" ? "OK" : msg.join(" ") || "FAIL");
    }
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lb-validate-"));
    const ca = await makeCa("kubernetes");
    fs.writeFileSync(path.join(dir, "kubernetes-ca.crt"), ca.certPem);
    const seen = new Map<string, string>(); // content → file (validate each distinct file once)
    const add = (id: string, kind: Job["kind"], content: string, ext: string) => {
      let file = seen.get(`${kind}\0${content}`);
      if (!file) {
        file = path.join(dir, `${id}.${ext}`);
        fs.writeFileSync(file, content);
        seen.set(`${kind}\0${content}`, file);
      }
      jobs.push({ id, kind, file });
    };
    for (const v of allVariants()) {
      const r = resolve(variantInput(v, dir));
      fs.writeFileSync(r.paths.checkScript, renderCheckScript(r), { mode: 0o755 });
      fs.writeFileSync(r.paths.notifyScript, renderNotifyScript(r), { mode: 0o755 });
      const cfg = renderEngineConfig(r);
      add(`${v.id}.${v.engine}`, v.engine, cfg, "cfg");
      if (v.engine === "haproxy") add(`${v.id}.haproxy-strict`, "haproxy-strict", cfg, "cfg");
      for (const h of r.lbHosts) add(`${v.id}.keepalived-${h.name}`, "keepalived", renderKeepalivedConfig(r, h.name), "conf");
    }
    // broken files: each validator must say no
    const v0 = allVariants()[0];
    const r0 = resolve(variantInput(v0, dir));
    const r0n = resolve(variantInput({ ...v0, engine: "nginx" }, dir));
    const hap = renderEngineConfig(r0);
    const ngx = renderEngineConfig(r0n);
    const ka = renderKeepalivedConfig(r0, "lb1");
    const broken: [string, Job["kind"], string][] = [
      ["broken.haproxy-typo", "haproxy", hap.replace("balance roundrobin", "balance roundrobbin")],
      ["broken.haproxy-missing-ca", "haproxy", hap.replace(r0.paths.caFile, `${dir}/no-such-ca.crt`)],
      ["broken.nginx-no-stream-module", "nginx", ngx.replace(/^load_module .*\n/m, "")],
      ["broken.nginx-debian-modules-too", "nginx", ngx.replace(/^(load_module .*\n)/m, "$1include /etc/nginx/modules-enabled/*.conf;\n")],
      ["broken.keepalived-unknown-keyword", "keepalived", ka.replace("init_file 0 overwrite", "init_filee 0 overwrite")],
      ["broken.keepalived-fractional-interval", "keepalived", ka.replace(`interval ${CHECK.interval}\n`, "interval 0.5\n")],
      ["broken.keepalived-no-interface", "keepalived", ka.replace(/host0/g, "nosuch0")],
      ["broken.keepalived-unbalanced", "keepalived", ka.replace(/}\n$/, "")],
    ];
    for (const [id, kind, content] of broken) {
      add(id, kind, content, kind === "keepalived" ? "conf" : "cfg");
      expectFail.add(id);
    }
    const t0 = Date.now();
    runJobs(jobs);
    console.log(
      `validators: ${versionOf("haproxy", ["-v"])}; ${versionOf("nginx", ["-v"])}; ${versionOf("keepalived", ["--version"])}\n` +
        `validated ${jobs.length} files (${new Set(jobs.map((j) => j.file)).size} distinct) in ${Date.now() - t0} ms`,
    );
  });

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each(allVariants().map((v) => [v.id, v] as [string, Variant]))("%s: engine and keepalived configs pass", (id, v) => {
    const mine = jobs.filter((j) => j.id.startsWith(`${id}.`));
    expect(mine.length).toBe((v.engine === "haproxy" ? 2 : 1) + v.lbCount);
    for (const j of mine) expect(`${j.id}: ${results.get(j.id)}`).toBe(`${j.id}: OK`);
  });

  it("each validator rejects a broken file (the checks are real)", () => {
    const report: string[] = [];
    for (const id of expectFail) {
      const res = results.get(id);
      report.push(`${id}: ${res}`);
      expect(res, id).toBeDefined();
      expect(res, id).not.toBe("OK");
    }
    console.log(report.join("\n"));
    expect(results.get("broken.haproxy-typo")).toMatch(/balance only supports/);
    expect(results.get("broken.haproxy-missing-ca")).toMatch(/Couldn't open the ca-file/);
    expect(results.get("broken.nginx-no-stream-module")).toMatch(/unknown directive "stream"/);
    expect(results.get("broken.nginx-debian-modules-too")).toMatch(/already loaded/);
    expect(results.get("broken.keepalived-unknown-keyword")).toMatch(/Unknown keyword 'init_filee'/);
    expect(results.get("broken.keepalived-fractional-interval")).toMatch(/interval '0.5' must be between 1/);
  });
});
