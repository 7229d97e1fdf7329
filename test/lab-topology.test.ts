/**
 * test/lab/topology.cjs (what `lab up` checks in the stack file): every problem at once, in the
 * program's `invalid stack configuration (N problems)` form — the program's own validation first,
 * then what only the lab cares about (its network, machine names, interface). Runs no host.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, test } from "vitest";

const TOPOLOGY = path.join(__dirname, "lab", "topology.cjs");
const ARGS = ["--net", "10.123.0.0/24", "--gateway", "10.123.0.1", "--machine-prefix", "hk-", "--max-machine-name", "12", "--interface", "host0"];
const hosts = (file: string) => spawnSync("node", [TOPOLOGY, "hosts", file, ...ARGS], { encoding: "utf8" });

describe("lab topology check", () => {
  test("Pulumi.dev.yaml passes: one TSV line per host, then the VIP", () => {
    const r = hosts(path.join(__dirname, "..", "Pulumi.dev.yaml"));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("host\tlb1\t10.123.0.11\tloadbalancer");
    // the hosts of examples/worker-pool's dev stack too, marked as the pool's (not the dev stack's workers)
    expect(lines.at(-2)).toBe("host\tpool1\t10.123.0.51\tworkerpool");
    expect(lines.filter((l) => l.startsWith("host\t"))).toHaveLength(11);
    expect(lines.at(-1)).toBe("vip\t10.123.0.100\thost0\t6443");
  });

  test("another stack file (the site test's) boots only its own hosts: the pool stack belongs to the dev stack", () => {
    const r = hosts(path.join(__dirname, "lab", "site-stack.yaml"));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("host\t"));
    expect(lines).toEqual(["host\tnode1\t10.123.0.51\tloadbalancer,etcd,controlplane,worker"]);
  });

  test("a duplicate name does not hide a bad address, an unknown key or the lab's own rules: all reported in one block", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-topology-"));
    const file = path.join(dir, "bad.yaml");
    fs.writeFileSync(
      file,
      `config:
  hakube:hosts:
    - { name: lb1, address: 10.123.0.11, roles: [loadbalancer] }
    - { name: lb1, address: 10.123.0.12, roles: [loadbalancer] }
    - { name: etcd1, address: 10.123.0.300, roles: [etcd] }
    - { name: etcdnameistoolong, address: 10.124.0.22, roles: [etcd, controlplane] }
    - { name: cp1, address: 10.123.0.31, roles: [controlplane], adress: x }
  hakube:loadBalancer: { vip: 10.123.0.100, interface: eth0 }
`,
    );
    try {
      const r = hosts(file);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines[0]).toBe(`lab: ${file}: invalid stack configuration (6 problems):`);
      const problems = lines.slice(1);
      expect(problems).toHaveLength(6);
      // the program's own words first
      expect(problems[0]).toMatch(/^ {2}- hakube:hosts\[2\]\.address: "10\.123\.0\.300" is neither an IP address nor a DNS name$/);
      expect(problems[1]).toBe('  - hakube:hosts[4].adress: unknown key (did you mean "address"?)');
      // then the lab's, by key path, in the same form
      expect(problems).toContain('  - hakube:hosts[1].name: "lb1" is already used by hakube:hosts[0] (lab)');
      expect(problems.some((p) => /^ {2}- hakube:hosts\[3\]\.name: "etcdnameistoolong": the lab's machine name hk-etcdnameistoolong is 20 characters; at most 12/.test(p))).toBe(true);
      expect(problems.some((p) => /^ {2}- hakube:hosts\[3\]\.address: 10\.124\.0\.22 is outside the lab bridge network 10\.123\.0\.0\/24/.test(p))).toBe(true);
      expect(problems).toContain('  - hakube:loadBalancer.interface: is "eth0", but lab hosts have one interface named host0 (lab)');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
