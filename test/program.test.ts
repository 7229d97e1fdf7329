/**
 * Whole-program properties, for every valid shape: unique type+name, no secret text in any
 * command, secret payloads only on (secret) stdin, determinism, the outputs contract, and
 * Pulumi.yaml's defaults matching the code's.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULTS } from "../components/config/defaults";
import { secretValues } from "./harness/fixtures";
import { stableJson, type Registration } from "./harness/mocks";
import { readStackFile, ROOT, runProgram, TEST_SSH_KEY, valueOf, type RunResult, type StackConfig } from "./harness/program";

const dev = (): StackConfig => ({ ...readStackFile("Pulumi.dev.yaml"), sshPrivateKey: TEST_SSH_KEY });

/** Shapes the whole-program checks run on. */
const SHAPES: [string, () => StackConfig][] = [
  ["dev", dev],
  ["dev with nginx, ingress and RSA", () => ({
    ...dev(),
    "hakube:loadBalancer": { ...(dev()["hakube:loadBalancer"] as object), engine: "nginx", ingress: { http: { port: 80, nodePort: 30080 }, https: { port: 443, nodePort: 30443 } } },
    "hakube:kubernetes": { encryptionAlgorithm: "RSA-2048" },
  })],
  ["dev with etcd.deployment kubeadm", () => ({ ...dev(), "hakube:etcd": { ...(dev()["hakube:etcd"] as object), deployment: "kubeadm" } })],
  ["etcd and load balancers on the control planes", () => ({
    sshPrivateKey: TEST_SSH_KEY,
    hosts: [
      { name: "cp1", address: "10.1.0.11", roles: ["controlplane", "etcd", "loadbalancer"] },
      { name: "cp2", address: "10.1.0.12", roles: ["controlplane", "etcd", "loadbalancer"] },
      { name: "cp3", address: "10.1.0.13", roles: ["controlplane", "etcd"] },
      { name: "w1", address: "10.1.0.21", roles: ["worker"] },
    ],
    loadBalancer: { vip: "10.1.0.100", port: 8443 },
  })],
];

/** The command texts a preview shows. */
const visibleText = (c: Registration) => [c.inputs.create, c.inputs.update, c.inputs.delete, stableJson(c.inputs.triggers ?? null), stableJson(c.inputs.environment ?? null)].join("\n");

for (const [shape, config] of SHAPES) {
  describe(`whole program: ${shape}`, () => {
    let r: RunResult;
    beforeAll(async () => {
      r = await runProgram(config());
      if (r.error) throw r.error;
    });

    it("registers every resource once per type and name, and nothing fails", () => {
      expect(r.harness.failures()).toEqual([]);
      const keys = r.harness.registrations.map((x) => `${x.type}::${x.name}`);
      const dup = keys.filter((k, i) => keys.indexOf(k) !== i);
      expect(dup).toEqual([]);
    });

    it("puts no secret into any command's create/update/delete/triggers/environment", () => {
      const secrets = secretValues(r.harness);
      expect(secrets.length).toBeGreaterThan(5);
      for (const c of r.harness.commands()) {
        const text = visibleText(c);
        for (const s of secrets) expect(text.includes(s), `secret in ${c.name}`).toBe(false);
      }
    });

    it("hands secrets over only on stdin, marked secret, with secret outputs", () => {
      const secrets = secretValues(r.harness);
      const b64 = secrets.map((s) => Buffer.from(s).toString("base64"));
      for (const c of r.harness.commands()) {
        const stdin = String(c.inputs.stdin ?? "");
        const carries = secrets.some((s) => stdin.includes(s)) || b64.some((s) => stdin.includes(s));
        if (carries || stdin) {
          expect(pulumi.runtime.isRpcSecret(c.rawInputs.stdin), `${c.name}: stdin must be secret`).toBe(true);
        }
      }
    });

    it("connects with the secret SSH key and every host's chain starts with its preflight", () => {
      const cmds = r.harness.commands();
      expect(cmds.length).toBeGreaterThan(0);
      for (const c of cmds) {
        expect(pulumi.runtime.isRpcSecret(c.rawInputs.connection), c.name).toBe(true);
        expect(c.inputs.connection.privateKey).toBe(TEST_SSH_KEY);
        expect(c.name).toMatch(/^[a-z0-9-]+-[a-z0-9-]+-[a-z0-9-]+$/);
      }
      const cfg = config();
      const hosts = (cfg.hosts ?? cfg["hakube:hosts"]) as { name: string }[];
      for (const h of hosts) expect(cmds.some((c) => c.name === `hosts-preflight-${h.name}`), h.name).toBe(true);
    });

    it("every command script is strict bash that names host and step on failure", () => {
      for (const c of r.harness.commands()) {
        expect(c.inputs.create).toContain("set -Eeuo pipefail");
        expect(c.inputs.create).toMatch(/hakube_fail\(\) \{ printf 'hakube: %s: %s: %s\\n'/);
        expect(c.inputs.create).toMatch(/HAKUBE_HOST=\S+ HAKUBE_STEP=\S+/);
      }
    });

    it("is deterministic: a second evaluation with the same state gives identical inputs", async () => {
      const again = await runProgram(config(), { state: r.harness.state });
      if (again.error) throw again.error;
      const byKey = (x: RunResult) => new Map(x.harness.registrations.map((g) => [`${g.type}::${g.name}`, stableJson(g.inputs)]));
      const a = byKey(r);
      const b = byKey(again);
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [k, v] of a) expect(b.get(k), k).toBe(v);
    });
  });
}

describe("outputs contract", () => {
  let r: RunResult;
  beforeAll(async () => {
    r = await runProgram(dev());
    if (r.error) throw r.error;
  });
  const NAMES = ["kubeconfig", "apiServerEndpoint", "vip", "clusterCaCertificate", "etcdEndpoints", "nodes", "joinInfo", "clusterName", "kubernetesVersion"];

  it("exports exactly the contract's outputs", () => {
    expect(Object.keys(r.outputs!).sort()).toEqual([...NAMES].sort());
  });
  it("only kubeconfig and joinInfo are secret", async () => {
    for (const n of NAMES) {
      const secret = await pulumi.isSecret(pulumi.output(r.outputs![n] as pulumi.Input<unknown>));
      expect(secret, n).toBe(n === "kubeconfig" || n === "joinInfo");
    }
  });
  it("has the documented values", async () => {
    const o = r.outputs!;
    expect(await valueOf(o.apiServerEndpoint as pulumi.Input<string>)).toBe("https://10.123.0.100:6443");
    expect(await valueOf(o.vip as pulumi.Input<string>)).toBe("10.123.0.100");
    expect(await valueOf(o.clusterName as pulumi.Input<string>)).toBe("dev");
    expect(await valueOf(o.kubernetesVersion as pulumi.Input<string>)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(await valueOf(o.etcdEndpoints as pulumi.Input<string[]>)).toEqual(["https://10.123.0.21:2379", "https://10.123.0.22:2379", "https://10.123.0.23:2379"]);
    const nodes = await valueOf(o.nodes as pulumi.Input<{ name: string; internalAddress: string; roles: string[] }[]>);
    expect(nodes.map((n) => n.name)).toEqual(["lb1", "lb2", "etcd1", "etcd2", "etcd3", "cp1", "cp2", "cp3", "worker1", "worker2"]);
    expect(nodes[5]).toEqual({ name: "cp1", internalAddress: "10.123.0.31", roles: ["controlplane"] });
    expect(await valueOf(o.clusterCaCertificate as pulumi.Input<string>)).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const join = await valueOf(o.joinInfo as pulumi.Input<{ endpoint: string; token: string; caCertHash: string }>);
    expect(Object.keys(join).sort()).toEqual(["caCertHash", "endpoint", "token"]);
    expect(join.endpoint).toBe("10.123.0.100:6443");
    expect(join.caCertHash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe("Pulumi.yaml", () => {
  const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
  it("declares every scalar key with type, description and the code's default", () => {
    const c = project.config;
    expect(project.name).toBe("hakube");
    expect(project.runtime).toMatchObject({ name: "nodejs", options: { typescript: true } });
    expect(Object.keys(c).sort()).toEqual(["clusterName", "sshPort", "sshPrivateKey", "sshUser", "strictHostKeys"]);
    for (const [k, v] of Object.entries(c) as [string, { type: string; description: string }][]) {
      expect(v.type, k).toMatch(/^(string|integer|boolean)$/);
      expect(v.description.length, k).toBeGreaterThan(10);
    }
    expect(c.sshUser.default).toBe(DEFAULTS.sshUser);
    expect(c.sshPort.default).toBe(DEFAULTS.sshPort);
    expect(c.strictHostKeys.default).toBe(DEFAULTS.strictHostKeys);
    expect(c.clusterName.default).toBe(""); // empty = the stack name
    expect(c.sshPrivateKey).toMatchObject({ type: "string", secret: true });
    expect(c.sshPrivateKey.default).toBeUndefined(); // required
  });
  it("the dev stack is the lab topology: 2 LBs, 3 etcd, 3 control planes, 2 workers", () => {
    const hosts = readStackFile("Pulumi.dev.yaml")["hakube:hosts"] as { roles: string[] }[];
    const count = (r: string) => hosts.filter((h) => h.roles.includes(r)).length;
    expect([count("loadbalancer"), count("etcd"), count("controlplane"), count("worker")]).toEqual([2, 3, 3, 2]);
  });
});
