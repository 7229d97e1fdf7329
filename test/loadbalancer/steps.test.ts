/**
 * The rendered step scripts, run for real (as the hosts would, through `wrapScript`) in a
 * sandbox: mount + network + PID namespaces with overlays on /etc, /var/lib, /var/log, the
 * real haproxy/nginx/keepalived binaries and a systemctl stand-in that runs the daemons and
 * logs what it was asked to do (test/loadbalancer/sandbox/). One load balancer, lb1.
 *
 * Proves: first run configures and starts; a second run changes nothing and reloads nothing;
 * a config change reloads (never restarts); a broken candidate is refused before the swap;
 * keepalived takes the VIP; an engine switch stops the other engine; delete scripts clean up.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  renderKeepalivedDeleteStep,
  renderKeepalivedStep,
  renderPackagesStep,
  renderProxyDeleteStep,
  renderProxyStep,
  resolve,
} from "../../components/loadbalancer/render";
import { wrapScript } from "../../components/remote/shell";
import { canUnshareNet, devInput, makeCa, missing } from "./fixtures";
import { describeReal } from "../harness/real";

const packagesInstalled = ["haproxy", "nginx", "libnginx-mod-stream", "keepalived"].every(
  (p) => spawnSync("dpkg-query", ["-W", "-f=${db:Status-Status}", p], { encoding: "utf8" }).stdout === "installed",
);
const why =
  missing(["haproxy", "nginx", "keepalived", "unshare", "ss", "useradd"], true) ??
  (packagesInstalled ? undefined : "the haproxy, nginx, libnginx-mod-stream and keepalived packages are not installed") ??
  (spawnSync("unshare", ["-m", "bash", "-c", "d=$(mktemp -d) && mkdir $d/u $d/w && mount -t overlay overlay -o lowerdir=/etc,upperdir=$d/u,workdir=$d/w /etc; r=$?; rm -rf $d; exit $r"]).status === 0 && canUnshareNet()
    ? undefined
    : "needs root, unshare and overlayfs");
if (why) console.warn(`[loadbalancer] step sandbox test skipped: ${why}`);

const SANDBOX = path.join(__dirname, "sandbox");

const input = devInput;

interface Result {
  name: string;
  rc: number;
  out: string;
  err: string;
}

describeReal("load-balancer steps in a sandbox", why, () => {
  let dir: string;
  const results: Result[] = [];
  const snaps = new Map<string, string>();
  let systemctlLog: string[] = [];
  let aptLog: string[] = [];
  const step = (i: number) => results[i];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lb-steps-"));
    fs.mkdirSync(path.join(dir, "steps"));
    const ca = (await makeCa("kubernetes")).certPem;
    const write = (name: string, step: string, body: string) =>
      fs.writeFileSync(path.join(dir, "steps", `${name}.sh`), wrapScript({ host: "lb1", step, user: "root", body }));

    const hap = resolve(input());
    const hapIngress = resolve(input({ ingress: { http: { port: 8080, nodePort: 30080 } } }));
    const ngx = resolve(input({ engine: "nginx", ingress: { http: { port: 8080, nodePort: 30080 } } }));
    write("packages", "packages", renderPackagesStep(hap));
    write("proxy", "proxy", renderProxyStep(hap, ca));
    write("keepalived", "keepalived", renderKeepalivedStep(hap, "lb1"));
    write("proxy-ingress", "proxy", renderProxyStep(hapIngress, ca));
    write("keepalived-ingress", "keepalived", renderKeepalivedStep(hapIngress, "lb1"));
    write("proxy-broken", "proxy", renderProxyStep(hapIngress, ca).replace("balance roundrobin", "balance roundrobbin").replace("bind 0.0.0.0:8080", "bind 0.0.0.0:8081"));
    write("packages-nginx", "packages", renderPackagesStep(ngx));
    write("proxy-nginx", "proxy", renderProxyStep(ngx, ca));
    write("keepalived-nginx", "keepalived", renderKeepalivedStep(ngx, "lb1"));
    write("keepalived-delete", "keepalived (delete)", renderKeepalivedDeleteStep(ngx));
    write("proxy-delete", "proxy (delete)", renderProxyDeleteStep(ngx));

    const items = [
      "!fresh", "packages", "proxy", "keepalived", "@first",
      "packages", "proxy", "keepalived", "@second",
      "proxy-ingress", "keepalived-ingress", "@changed",
      "proxy-broken", "@broken",
      "packages-nginx", "proxy-nginx", "keepalived-nginx", "@nginx",
      "proxy-nginx", "keepalived-nginx",
      "keepalived-delete", "proxy-delete", "@deleted",
    ];
    const t0 = Date.now();
    const run = spawnSync("unshare", ["--mount", "--net", "--pid", "--fork", "--mount-proc", path.join(SANDBOX, "run.sh"), dir, ...items], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(run.status, `sandbox: ${run.stderr}`).toBe(0);
    const logFile = path.join(dir, "run", "hakube-fake-systemctl.log"); // state-changing systemctl calls, in order
    systemctlLog = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n").filter(Boolean) : [];
    aptLog = fs.existsSync(path.join(dir, "run", "hakube-fake-apt.log")) ? fs.readFileSync(path.join(dir, "run", "hakube-fake-apt.log"), "utf8").split("\n").filter(Boolean) : [];
    items.forEach((item, k) => {
      if (item.startsWith("!")) return;
      const base = path.join(dir, "out", `${k + 1}-${item.replace(/^@/, "")}`);
      if (item.startsWith("@")) snaps.set(item.slice(1), fs.readFileSync(`${base}.snap`, "utf8"));
      else
        results.push({
          name: item,
          rc: Number(fs.readFileSync(`${base}.rc`, "utf8")),
          out: fs.readFileSync(`${base}.out`, "utf8"),
          err: fs.readFileSync(`${base}.err`, "utf8"),
        });
    });
    console.log(`step sandbox: ${results.length} step runs in ${Date.now() - t0} ms\n` + results.map((r, i) => `  #${i} ${r.name} rc=${r.rc}: ${r.out.trim().replace(/\n/g, " | ") || "(no output)"}${r.err ? ` [stderr: ${r.err.trim().replace(/\n/g, " | ")}]` : ""}`).join("\n") + `\n  systemctl: ${systemctlLog.join(", ")}`);
  }, 90_000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("first run: installs the packages without starting them, files, the script user; starts haproxy then keepalived; takes the VIP", () => {
    for (const i of [0, 1, 2]) expect(step(i).rc, `${step(i).name}: ${step(i).err}`).toBe(0);
    expect(step(0).out).toContain("installed haproxy keepalived");
    // apt ran while a policy-rc.d kept the services stopped, and it is gone afterwards
    expect(aptLog).toEqual(["apt-get -o DPkg::Lock::Timeout=300 update policy-rc.d=101", "apt-get --no-install-recommends haproxy keepalived policy-rc.d=101"]);
    expect(snaps.get("first")).not.toContain("policy-rc.d");
    expect(step(0).out).toContain("created user keepalived_script");
    expect(step(1).out).toContain("changed /etc/haproxy/haproxy.cfg");
    expect(step(1).out).toContain("changed /etc/haproxy/hakube-kubernetes-ca.crt");
    expect(step(1).out).toContain("restarted haproxy (first configuration by hakube)");
    expect(step(2).out).toContain("changed /etc/keepalived/keepalived.conf");
    expect(step(2).out).toContain("restarted keepalived (first configuration by hakube)");
    expect(snaps.get("first")).toContain("addresses: 10.123.0.11/24 10.123.0.100/24");
    expect(snaps.get("first")).toMatch(/running: haproxy\nrunning: keepalived/);
  });

  it("second run: no output, no file changed, nothing started, reloaded or restarted", () => {
    for (const i of [3, 4, 5]) {
      expect(step(i).rc, step(i).err).toBe(0);
      expect(`${step(i).name}: ${step(i).out}`).toBe(`${step(i).name}: `);
    }
    expect(snaps.get("second")).toBe(snaps.get("first"));
    // up to the config change, the only state-changing calls are the first run's
    const beforeChange = systemctlLog.slice(0, systemctlLog.indexOf("reload haproxy"));
    expect(beforeChange).toEqual(["enable haproxy", "restart haproxy", "daemon-reload", "enable keepalived", "restart keepalived"]);
  });

  it("a changed config reloads haproxy (no restart); keepalived only gets the new check script", () => {
    expect(step(6).rc, step(6).err).toBe(0);
    expect(step(6).out).toContain("changed /etc/haproxy/haproxy.cfg");
    expect(step(6).out).toContain("reloaded haproxy");
    expect(step(6).out).not.toMatch(/restarted/);
    expect(step(7).rc, step(7).err).toBe(0);
    expect(step(7).out.trim()).toBe("changed /etc/keepalived/hakube-check-lb.sh");
    expect(systemctlLog).toContain("reload haproxy");
    expect(systemctlLog.filter((l) => l === "restart haproxy")).toHaveLength(1);
    expect(snaps.get("changed")).toContain("10.123.0.100/24");
  });

  it("a broken candidate is refused before the swap: live config, process and VIP unchanged", () => {
    expect(step(8).rc).toBe(1);
    expect(step(8).err).toMatch(/^hakube: lb1: proxy: haproxy rejected the new configuration \(exit 1; the live configuration is unchanged\):.*balance only supports/m);
    expect(step(8).out).toBe("");
    expect(snaps.get("broken")).toBe(snaps.get("changed"));
    expect(systemctlLog.filter((l) => l === "reload haproxy")).toHaveLength(1);
  });

  it("engine switch to nginx: haproxy stopped, nginx configured and started; a re-run is quiet", () => {
    for (const i of [9, 10, 11]) expect(step(i).rc, `${step(i).name}: ${step(i).err}`).toBe(0);
    expect(step(10).out).toContain("stopped haproxy: the engine is now nginx");
    expect(step(10).out).toContain("restarted nginx (first configuration by hakube)");
    expect(step(11).out).toContain("changed /etc/keepalived/hakube-check-lb.sh");
    expect(snaps.get("nginx")).toMatch(/running: nginx\nrunning: keepalived/);
    expect(snaps.get("nginx")).not.toContain("running: haproxy");
    expect(snaps.get("nginx")).toContain("10.123.0.100/24");
    for (const i of [12, 13]) expect(`${step(i).name} rc=${step(i).rc}: ${step(i).out}`).toBe(`${step(i).name} rc=0: `);
  });

  it("delete scripts stop keepalived (VIP released) and nginx", () => {
    expect(step(14).rc, step(14).err).toBe(0);
    expect(step(14).out).toContain("stopped keepalived");
    expect(step(15).rc, step(15).err).toBe(0);
    expect(step(15).out).toContain("stopped nginx");
    expect(snaps.get("deleted")).toContain("addresses: 10.123.0.11/24 \n");
    expect(snaps.get("deleted")).not.toMatch(/running:/);
  });
});
