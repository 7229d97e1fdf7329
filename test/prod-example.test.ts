/**
 * Pulumi.prod.example.yaml is a valid stack: the program's own parser accepts it (with the SSH
 * key set as a secret, as the file's comments say), it has the documented production layout and
 * it gives no HA warning.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { hostsWithRole, parseClusterSpec, ConfigError } from "../components/config/spec";
import { readStackFile, ROOT, TEST_SSH_KEY } from "./harness/program";

const FILE = "Pulumi.prod.example.yaml";
const values = (over: Record<string, unknown> = {}) => {
  const cfg = { ...readStackFile(FILE), "hakube:sshPrivateKey": TEST_SSH_KEY, ...over };
  return Object.fromEntries(Object.entries(cfg).map(([k, v]) => [k.replace(/^hakube:/, ""), typeof v === "string" ? v : JSON.stringify(v)]));
};
const parseIt = (over: Record<string, unknown> = {}) => parseClusterSpec({ stackName: "prod", values: values(over), secretKeys: new Set(["sshPrivateKey"]) });

describe(FILE, () => {
  it("parses: 2 load balancers, 5 etcd, 3 control planes, workers; strict host keys; no warnings", () => {
    const { spec, warnings } = parseIt();
    expect(warnings).toEqual([]);
    const n = (r: Parameters<typeof hostsWithRole>[1]) => hostsWithRole(spec, r).length;
    expect([n("loadbalancer"), n("etcd"), n("controlplane")]).toEqual([2, 5, 3]);
    expect(n("worker")).toBeGreaterThanOrEqual(2);
    expect(spec.strictHostKeys).toBe(true);
    expect(spec.hosts.every((h) => h.hostKey?.startsWith("ssh-ed25519 "))).toBe(true);
    // dedicated roles: no host shares etcd with a control plane in this layout
    expect(spec.hosts.every((h) => h.roles.length === 1)).toBe(true);
    const gpu = spec.hosts.find((h) => h.name === "gpu1")!;
    expect(gpu).toMatchObject({ address: "gpu1.prod.example.net", internalAddress: "192.0.2.51", taints: [{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }] });
    expect(spec.loadBalancer.ingress).toEqual({ http: { port: 80, nodePort: 30080 }, https: { port: 443, nodePort: 30443 } });
  });

  it("holds no secret: the SSH key is set with `pulumi config set --secret` or comes from Pulumi ESC", () => {
    const text = fs.readFileSync(path.join(ROOT, FILE), "utf8");
    const doc = parse(text) as { config: Record<string, unknown> };
    expect(Object.keys(doc.config)).not.toContain("hakube:sshPrivateKey");
    expect(text).toContain("pulumi config set --secret hakube:sshPrivateKey");
    expect(text).toMatch(/fn::secret/);
    expect(text).toMatch(/# environment:\n#\s+- myorg\/hakube-prod/);
    expect(text).not.toMatch(/PRIVATE KEY-----\n[A-Za-z0-9+/]{20}/);
  });

  it("the parser really checks it: a sixth etcd member or a broken host key fails, naming the key path", () => {
    const hosts = readStackFile(FILE)["hakube:hosts"] as Record<string, unknown>[];
    expect(() => parseIt({ "hakube:hosts": [...hosts, { name: "etcd6", address: "192.0.2.26", roles: ["etcd"], hostKey: hosts[2].hostKey }] })).toThrow(/hakube:hosts: 6 etcd members/);
    const broken = hosts.map((h, i) => (i === 3 ? { ...h, hostKey: "ssh-ed25519 AAAA" } : h));
    try {
      parseIt({ "hakube:hosts": broken });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toMatch(/hakube:hosts\[3\]\.hostKey/);
    }
  });
});
