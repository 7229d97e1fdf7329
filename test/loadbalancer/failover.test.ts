/**
 * VRRP failover with the rendered keepalived.conf, check script and haproxy.cfg, run by the real
 * keepalived and HAProxy in two network namespaces joined by a veth pair (sandbox/failover.sh).
 * Every API server is absent the whole time. Measures: a crashed master is replaced within 1 s;
 * the VIP does not move while every API server is down; a restarted master does not take the VIP
 * back (the holder's priority bonus); a dead engine moves the VIP; every check failing at once (load)
 * moves nothing and leaves the VIP held.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { renderCheckScript, renderHaproxyConfig, renderKeepalivedConfig, renderNotifyScript, resolve } from "../../components/loadbalancer/render";
import { canUnshareNet, devInput, hasCommand, makeCa, missing } from "./fixtures";
import { describeReal } from "../harness/real";

const why =
  missing(["haproxy", "keepalived", "unshare", "nsenter", "ss"], true) ??
  (hasCommand("date") && spawnSync("date", ["+%3N"], { encoding: "utf8" }).stdout.trim().match(/^\d{3}$/) ? undefined : "date +%3N unsupported") ??
  (canUnshareNet() ? undefined : "needs root and network namespaces");
if (why) console.warn(`[loadbalancer] failover test skipped: ${why}`);

describeReal("VRRP failover with the rendered configs", why, () => {
  let dir: string;
  const res: Record<string, string> = {};
  let raw = "";

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lb-failover-"));
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(path.join(dir, "ca.crt"), (await makeCa("kubernetes")).certPem);
    for (const n of [1, 2]) {
      const r = resolve({
        ...devInput({
          lbHosts: [
            { name: "lb1", internalAddress: "10.123.0.11" },
            { name: "lb2", internalAddress: "10.123.0.12" },
          ],
          workers: [],
        }),
        // paths as seen inside the sandbox (DIR is bound on /srv)
        paths: { caFile: "/srv/ca.crt", statsSocket: `/srv/lb${n}/admin.sock`, checkScript: `/srv/lb${n}/check.sh`, notifyScript: `/srv/lb${n}/notify.sh`, holderFile: `/srv/lb${n}/holder` },
        scriptUser: "nobody", // the hosts get keepalived_script from the packages step
      });
      const d = path.join(dir, `lb${n}`);
      fs.mkdirSync(d, { mode: 0o755 });
      fs.writeFileSync(path.join(d, "haproxy.cfg"), renderHaproxyConfig(r));
      fs.writeFileSync(path.join(d, "keepalived.conf"), renderKeepalivedConfig(r, `lb${n}`));
      fs.writeFileSync(path.join(d, "check.sh"), renderCheckScript(r), { mode: 0o755 });
      fs.writeFileSync(path.join(d, "notify.sh"), renderNotifyScript(r), { mode: 0o755 });
    }
    const run = spawnSync("unshare", ["--mount", "--net", "--pid", "--fork", "--mount-proc", path.join(__dirname, "sandbox", "failover.sh"), dir], {
      encoding: "utf8",
      timeout: 60_000,
    });
    raw = `${run.stdout}\n${run.stderr}`;
    expect(run.status, raw).toBe(0);
    for (const m of run.stdout.matchAll(/^RESULT (\S+) (.*)$/gm)) res[m[1]] = m[2];
    console.log(`keepalived failover (VRRPv3, unicast, advert 0.2 s, holder bonus, checks lower the priority; every API server down):\n  ${Object.entries(res).map(([k, v]) => `${k}: ${v}`).join("\n  ")}`);
  }, 90_000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the first load balancer takes the VIP at start", () => {
    expect(Number(res.lb1_master_after_start_ms), raw).toBeLessThan(3000);
  });

  it("the VIP stays put while every API server is down (the check tests the local HAProxy only)", () => {
    expect(res.hold_all_apiservers_down_bad_samples, raw).toBe("0");
  });

  it("a crashed master is replaced within 1 s", () => {
    expect(Number(res.master_crash_failover_ms), raw).toBeLessThanOrEqual(1000);
  });

  it("a restarted master does not take the VIP back (the holder's +50 bonus outranks it)", () => {
    expect(res.nopreempt_hold_bad_samples, raw).toBe("0");
  });

  it("a dead HAProxy moves the VIP (check fall 2 × 1 s lowers the holder below the backup, which preempts)", () => {
    expect(Number(res.engine_death_failover_ms), raw).toBeLessThan(4000);
    expect(res.old_master_released_vip, raw).toBe("yes");
  });

  it("every check failing at once (as on a machine too busy to run them) leaves the VIP on the holder: no FAULT, no move", () => {
    expect(res.all_checks_failing_bad_samples, raw).toBe("0");
  });
});
