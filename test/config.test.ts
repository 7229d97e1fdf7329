/**
 * Stack config → ClusterSpec: invalid configurations fail with every problem named by key path
 * and register no resource; valid shapes evaluate; non-HA shapes warn.
 */
import { describe, expect, it } from "vitest";
import { parseClusterSpec, type RawConfig } from "../components/config/spec";
import { haHosts, host, type Host } from "./harness/fixtures";
import { runProgram, TEST_SSH_KEY, type StackConfig } from "./harness/program";

const ED25519_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxkTTGdP2tD9KRu7qSj0uxSVhIDbVSN8rIUwVXtK1MW";

function haConfig(over: StackConfig = {}): StackConfig {
  return {
    sshPrivateKey: TEST_SSH_KEY,
    hosts: haHosts(),
    loadBalancer: { vip: "10.0.0.100" },
    ...over,
  };
}

/** haConfig with hosts[i] replaced/extended. */
function withHost(i: number, patch: Host, over: StackConfig = {}): StackConfig {
  const hosts = haHosts();
  hosts[i] = { ...hosts[i], ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete hosts[i][k];
  return haConfig({ hosts, ...over });
}

interface Bad {
  what: string;
  config: StackConfig;
  /** every one of these must appear in the error, each as its own problem line */
  expect: (string | RegExp)[];
  secretKeys?: string[];
}

const BAD: Bad[] = [
  { what: "IPv4 with an octet > 255", config: withHost(2, { internalAddress: "10.0.0.300" }), expect: ['hakube:hosts[2].internalAddress: "10.0.0.300" is not an IPv4 address'] },
  { what: "internalAddress IPv6", config: withHost(3, { internalAddress: "fd00::3" }), expect: ["hakube:hosts[3].internalAddress:"] },
  { what: "address neither IP nor DNS", config: withHost(1, { address: "lb 2!" }), expect: ["hakube:hosts[1].address:"] },
  { what: "DNS address without internalAddress", config: withHost(5, { address: "cp1.example.com" }), expect: ["hakube:hosts[5].internalAddress: is required because address"] },
  { what: "host name not RFC 1123", config: withHost(0, { name: "LB_1" }), expect: ["hakube:hosts[0].name:"] },
  { what: "host name too long", config: withHost(0, { name: "a".repeat(64) }), expect: ["hakube:hosts[0].name:"] },
  { what: "duplicate host name", config: withHost(1, { name: "lb1" }), expect: ['hakube:hosts[1].name: "lb1" is already used by hakube:hosts[0]'] },
  { what: "duplicate internalAddress", config: withHost(4, { address: "10.0.0.22" }), expect: ['hakube:hosts[4].internalAddress: "10.0.0.22" is already used by hakube:hosts[3]'] },
  { what: "empty roles", config: withHost(8, { roles: [] }), expect: ["hakube:hosts[8].roles:"] },
  { what: "unknown role", config: withHost(8, { roles: ["wrker"] }), expect: ["hakube:hosts[8].roles[0]:"] },
  { what: "duplicate role", config: withHost(8, { roles: ["worker", "worker"] }), expect: ['hakube:hosts[8].roles: duplicate role "worker"'] },
  { what: "typo in a host key", config: withHost(2, { adress: "10.0.0.99" }), expect: ['hakube:hosts[2].adress: unknown key (did you mean "address"?)'] },
  { what: "per-host port out of range", config: withHost(6, { port: 70000 }), expect: ["hakube:hosts[6].port: 70000 is out of range 1–65535"] },
  { what: "bad label key", config: withHost(8, { labels: { "bad key": "x" } }), expect: ['hakube:hosts[8].labels["bad key"]:'] },
  { what: "bad label value", config: withHost(8, { labels: { tier: "has space" } }), expect: ["hakube:hosts[8].labels.tier:"] },
  { what: "bad taint effect", config: withHost(8, { taints: ["gpu=true:NoWay"] }), expect: ["hakube:hosts[8].taints[0]:"] },
  { what: "malformed hostKey", config: withHost(0, { hostKey: "ssh-ed25519 !!!" }), expect: ["hakube:hosts[0].hostKey:"] },
  { what: "strictHostKeys without hostKey", config: haConfig({ strictHostKeys: "true", hosts: haHosts().map((h, i) => (i === 0 ? h : { ...h, hostKey: ED25519_KEY })) }), expect: ["hakube:hosts[0].hostKey: is required because hakube:strictHostKeys is true"] },
  { what: "hosts missing", config: { sshPrivateKey: TEST_SSH_KEY, loadBalancer: { vip: "10.0.0.100" } }, expect: ["hakube:hosts: is required"] },
  { what: "hosts not a list", config: haConfig({ hosts: { name: "x" } }), expect: ["hakube:hosts: expected a list of hosts"] },
  { what: "even etcd count", config: withHost(4, { roles: ["worker"], address: "10.0.0.43" }), expect: ["hakube:hosts: 2 etcd members; etcd needs an odd count"] },
  { what: "no control plane", config: haConfig({ hosts: haHosts().filter((h) => !(h.roles as string[]).includes("controlplane")) }), expect: ["hakube:hosts: no host has role controlplane"] },
  { what: "no load balancer", config: haConfig({ hosts: haHosts().filter((h) => !(h.roles as string[]).includes("loadbalancer")) }), expect: ["hakube:hosts: no host has role loadbalancer"] },
  { what: "no etcd", config: haConfig({ hosts: haHosts().filter((h) => !(h.roles as string[]).includes("etcd")) }), expect: ["hakube:hosts: no host has role etcd"] },
  { what: "LB on a control plane with port 6443", config: withHost(5, { roles: ["controlplane", "loadbalancer"] }), expect: [/^hakube:loadBalancer\.port: 6443 clashes on hakube:hosts\[5\] \(cp1/] },
  { what: "VIP outside the LB subnet", config: haConfig({ loadBalancer: { vip: "10.0.1.100" } }), expect: [/^hakube:loadBalancer\.vip: 10\.0\.1\.100 is outside 10\.0\.0\.0\/24, the subnet of load balancer hakube:hosts\[0\]/] },
  { what: "VIP equals a host address", config: haConfig({ loadBalancer: { vip: "10.0.0.11" } }), expect: ["hakube:loadBalancer.vip: 10.0.0.11 is the address of hakube:hosts[0]"] },
  { what: "VIP missing", config: haConfig({ loadBalancer: { port: 6443 } }), expect: ["hakube:loadBalancer.vip: is required"] },
  { what: "loadBalancer missing", config: haConfig({ loadBalancer: undefined }), expect: ["hakube:loadBalancer: is required"] },
  { what: "unknown engine", config: haConfig({ loadBalancer: { vip: "10.0.0.100", engine: "envoy" } }), expect: ['hakube:loadBalancer.engine: "envoy" is not one of haproxy, nginx'] },
  { what: "virtualRouterId out of range", config: haConfig({ loadBalancer: { vip: "10.0.0.100", virtualRouterId: 256 } }), expect: ["hakube:loadBalancer.virtualRouterId: 256 is out of range 1–255"] },
  { what: "ingress nodePort outside 30000-32767", config: haConfig({ loadBalancer: { vip: "10.0.0.100", ingress: { http: { port: 80, nodePort: 8080 } } } }), expect: ["hakube:loadBalancer.ingress.http.nodePort: 8080 is out of range 30000–32767"] },
  { what: "ingress port equals API port", config: haConfig({ loadBalancer: { vip: "10.0.0.100", ingress: { https: { port: 6443, nodePort: 30443 } } } }), expect: ["hakube:loadBalancer.ingress.https.port: 6443 is also used by hakube:loadBalancer.port"] },
  { what: "typo in loadBalancer", config: haConfig({ loadBalancer: { vip: "10.0.0.100", virtualRouterID: 7 } }), expect: ['hakube:loadBalancer.virtualRouterID: unknown key (did you mean "virtualRouterId"?)'] },
  { what: "etcd version not semver", config: haConfig({ etcd: { version: "3.5" } }), expect: ['hakube:etcd.version: "3.5" is not a semantic version'] },
  { what: "etcd version not semver with source apt", config: haConfig({ etcd: { source: "apt", version: "bookworm" } }), expect: ['hakube:etcd.version: "bookworm" is not a semantic version'] },
  { what: "etcd version empty with source apt", config: haConfig({ etcd: { source: "apt", version: "" } }), expect: [/^hakube:etcd\.version: /] },
  { what: "etcd unknown source", config: haConfig({ etcd: { source: "snap" } }), expect: ["hakube:etcd.source:"] },
  { what: "etcd downloadUrl without {version}", config: haConfig({ etcd: { downloadUrl: "https://mirror.example/etcd-linux-{arch}.tar.gz" } }), expect: ["hakube:etcd.downloadUrl:"] },
  { what: "etcd sha256 not hex", config: haConfig({ etcd: { sha256: { amd64: "xyz" } } }), expect: ["hakube:etcd.sha256.amd64:"] },
  { what: "etcd sha256 unknown arch", config: haConfig({ etcd: { sha256: { sparc: "a".repeat(64) } } }), expect: [/^hakube:etcd\.sha256/] },
  { what: "etcd relative dataDir", config: haConfig({ etcd: { dataDir: "var/lib/etcd" } }), expect: ["hakube:etcd.dataDir:"] },
  { what: "kubernetes version garbage", config: haConfig({ kubernetes: { version: "latest" } }), expect: ["hakube:kubernetes.version:"] },
  { what: "podSubnet not a CIDR", config: haConfig({ kubernetes: { podSubnet: "10.244.0.0" } }), expect: ["hakube:kubernetes.podSubnet:"] },
  { what: "podSubnet with host bits", config: haConfig({ kubernetes: { podSubnet: "10.244.1.0/16" } }), expect: ['hakube:kubernetes.podSubnet: "10.244.1.0/16" has host bits set; did you mean 10.244.0.0/16?'] },
  { what: "service subnet overlaps pods", config: haConfig({ kubernetes: { serviceSubnet: "10.244.128.0/20" } }), expect: ["hakube:kubernetes.serviceSubnet: 10.244.128.0/20 overlaps podSubnet 10.244.0.0/16"] },
  { what: "service subnet contains a host", config: haConfig({ kubernetes: { serviceSubnet: "10.0.0.0/16" } }), expect: ["hakube:kubernetes.serviceSubnet: 10.0.0.0/16 contains hakube:hosts[0].address (10.0.0.11)"] },
  { what: "service subnet larger than /12", config: haConfig({ kubernetes: { serviceSubnet: "10.64.0.0/10" } }), expect: ["hakube:kubernetes.serviceSubnet: 10.64.0.0/10 is larger than the API server allows"] },
  { what: "packages unknown", config: haConfig({ kubernetes: { packages: "snap" } }), expect: ["hakube:kubernetes.packages:"] },
  { what: "cni plugin unknown", config: haConfig({ cni: { plugin: "weave" } }), expect: ['hakube:cni.plugin: "weave" is not one of calico, flannel, cilium, none'] },
  { what: "cni manifestUrl not a URL", config: haConfig({ cni: { manifestUrl: "calico.yaml" } }), expect: ["hakube:cni.manifestUrl:"] },
  { what: "clusterName with capitals", config: haConfig({ clusterName: "Prod" }), expect: ['hakube:clusterName: "Prod" must match'] },
  { what: "sshPort not a number", config: haConfig({ sshPort: "ssh" }), expect: ['hakube:sshPort: expected an integer, got "ssh"'] },
  { what: "strictHostKeys not a boolean", config: haConfig({ strictHostKeys: "yes" }), expect: ['hakube:strictHostKeys: expected true or false, got "yes"'] },
  { what: "sshPrivateKey missing", config: haConfig({ sshPrivateKey: undefined }), expect: ["hakube:sshPrivateKey: is required"] },
  { what: "sshPrivateKey in plain text", config: haConfig(), secretKeys: [], expect: ["hakube:sshPrivateKey: is stored in plain text"] },
  { what: "unknown top-level key", config: haConfig({ sshUsr: "admin" }), expect: ['hakube:sshUsr: unknown key (did you mean "sshUser"?)'] },
  { what: "object key given as plain text", config: haConfig({ kubernetes: "1.34" }), expect: [/^hakube:kubernetes: expected/] },
  { what: "Kubernetes older than v1beta4", config: haConfig({ kubernetes: { version: "1.30.5" } }), expect: ["hakube:kubernetes.version: 1.30.5 is too old"] },
  { what: "containerd source unknown", config: haConfig({ kubernetes: { containerd: { source: "docker" } } }), expect: ['hakube:kubernetes.containerd.source: "docker" is not one of upstream, distribution, preinstalled'] },
  { what: "containerd too old for the Kubernetes release", config: haConfig({ kubernetes: { containerd: { version: "1.7.28" } } }), expect: ["hakube:kubernetes.containerd.version: 1.7.28 is not supported with Kubernetes 1.37.2 (needs 2.3.0+)"] },
  { what: "containerd version with source distribution", config: haConfig({ kubernetes: { containerd: { source: "distribution", version: "2.3.4" } } }), expect: ['hakube:kubernetes.containerd.version: is only used with source "upstream"'] },
  { what: "typo in containerd", config: haConfig({ kubernetes: { containerd: { runcVersoin: "1.5.1" } } }), expect: ['hakube:kubernetes.containerd.runcVersoin: unknown key (did you mean "runcVersion"?)'] },
  { what: "bootstrap token TTL not a duration", config: haConfig({ kubernetes: { bootstrapTokenTtl: "1d" } }), expect: ['hakube:kubernetes.bootstrapTokenTtl: "1d" is not a duration'] },
  { what: "cilium without manifestUrl", config: haConfig({ cni: { plugin: "cilium" } }), expect: ["hakube:cni.manifestUrl: is required with plugin \"cilium\""] },
  { what: "cni image with a tag in its name", config: haConfig({ cni: { plugin: "flannel", images: [{ name: "ghcr.io/flannel-io/flannel:v0.28.10", newName: "mirror.example.com/flannel" }] } }), expect: ['hakube:cni.images[0].name: "ghcr.io/flannel-io/flannel:v0.28.10" is not an image name'] },
  { what: "cni image that renames nothing", config: haConfig({ cni: { plugin: "flannel", images: [{ name: "ghcr.io/flannel-io/flannel" }] } }), expect: ["hakube:cni.images[0]: renames nothing"] },
  { what: "cni image with newTag and digest", config: haConfig({ cni: { plugin: "flannel", images: [{ name: "ghcr.io/flannel-io/flannel", newTag: "v1", digest: "sha256:" + "a".repeat(64) }] } }), expect: ["hakube:cni.images[0].digest: give newTag or digest, not both"] },
  { what: "cni image renamed twice", config: haConfig({ cni: { plugin: "flannel", images: [{ name: "docker.io/x/y", newTag: "1" }, { name: "docker.io/x/y", newTag: "2" }] } }), expect: ['hakube:cni.images[1].name: "docker.io/x/y" is renamed twice (also at cni.images[0])'] },
  { what: "cni patch without kind and metadata.name", config: haConfig({ cni: { plugin: "flannel", patches: [{ target: { kind: "ConfigMap", name: "kube-flannel-cfg" }, patch: { apiVersion: "v1", data: {} } }] } }), expect: ["hakube:cni.patches[0].patch.kind: is required", "hakube:cni.patches[0].patch.metadata.name: is required"] },
  { what: "cni patch target kind not a kind", config: haConfig({ cni: { plugin: "flannel", patches: [{ target: { kind: "configmap", name: "x" }, patch: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } } }] } }), expect: ['hakube:cni.patches[0].target.kind: "configmap" is not a kind'] },
  { what: "cni images with plugin none", config: haConfig({ cni: { plugin: "none", images: [{ name: "docker.io/x/y", newTag: "1" }] } }), expect: ['hakube:cni.images: has no effect with plugin "none"'] },
  { what: "node-role label the kubelet may not set", config: withHost(8, { labels: { "node-role.kubernetes.io/worker": "" } }), expect: ['hakube:hosts[8].labels["node-role.kubernetes.io/worker"]: the kubelet may not set labels'] },
];

describe("invalid configurations: one error naming every problem, nothing registered", () => {
  it("has at least 30 cases", () => expect(BAD.length).toBeGreaterThanOrEqual(30));

  for (const c of BAD) {
    it(c.what, async () => {
      const r = await runProgram(c.config, { secretKeys: c.secretKeys });
      expect(r.error, "the program must fail").toBeDefined();
      const lines = r.error!.message.split("\n").map((l) => l.replace(/^\s*- /, ""));
      for (const e of c.expect) {
        if (typeof e === "string") expect(lines.some((l) => l.startsWith(e)), `"${e}" in:\n${r.error!.message}`).toBe(true);
        else expect(lines.some((l) => e.test(l)), `${e} in:\n${r.error!.message}`).toBe(true);
      }
      expect(r.harness.registrations.map((x) => `${x.type} ${x.name}`)).toEqual([]);
    });
  }

  it("reports every problem of a config at once", async () => {
    const hosts = haHosts();
    hosts[2] = { ...hosts[2], internalAddress: "10.0.0.300" };
    hosts[9] = { ...hosts[9], name: "W2" };
    const r = await runProgram(haConfig({ hosts, loadBalancer: { vip: "10.9.9.9", engine: "traefik" }, kubernetes: { podSubnet: "x" }, sshPort: "0" }));
    const msg = r.error!.message;
    for (const p of ["hakube:hosts[2].internalAddress:", "hakube:hosts[9].name:", "hakube:loadBalancer.engine:", "hakube:kubernetes.podSubnet:", "hakube:sshPort:"])
      expect(msg).toContain(p);
    expect(msg).toMatch(/^invalid stack configuration \(\d+ problems\)/);
    expect(r.harness.registrations).toEqual([]);
  });
});

describe("valid shapes", () => {
  const minimal = haConfig({
    hosts: [host("solo", "192.168.1.10", ["loadbalancer", "etcd", "controlplane", "worker"])],
    loadBalancer: { vip: "192.168.1.100", port: 8443 },
  });
  const shapes: [string, StackConfig, string[]][] = [
    ["minimal (one host, every role)", minimal, ["1 etcd member", "1 control plane", "1 load balancer"]],
    ["full HA", haConfig(), []],
    [
      "etcd on the control-plane hosts",
      haConfig({
        hosts: [
          host("lb1", "10.0.0.11", ["loadbalancer"]),
          host("lb2", "10.0.0.12", ["loadbalancer"]),
          host("cp1", "10.0.0.31", ["controlplane", "etcd"]),
          host("cp2", "10.0.0.32", ["controlplane", "etcd"]),
          host("cp3", "10.0.0.33", ["controlplane", "etcd"]),
          host("w1", "10.0.0.41", ["worker"], { labels: { "node.example.com/tier": "web" }, taints: ["dedicated=web:NoSchedule"] }),
        ],
      }),
      [],
    ],
    ["nginx", haConfig({ loadBalancer: { vip: "10.0.0.100", engine: "nginx" } }), []],
    ["ingress", haConfig({ loadBalancer: { vip: "10.0.0.100", ingress: { http: { port: 80, nodePort: 30080 }, https: { port: 443, nodePort: 30443 } } } }), []],
    [
      "LB co-located with control planes on 8443",
      haConfig({
        hosts: [
          host("cp1", "10.0.0.31", ["controlplane", "etcd", "loadbalancer"]),
          host("cp2", "10.0.0.32", ["controlplane", "etcd", "loadbalancer"]),
          host("cp3", "10.0.0.33", ["controlplane", "etcd"]),
          host("w1", "10.0.0.41", ["worker"]),
        ],
        loadBalancer: { vip: "10.0.0.100", port: 8443 },
      }),
      [],
    ],
    [
      "DNS addresses, per-host SSH settings, host keys, v-prefixed versions",
      haConfig({
        strictHostKeys: "true",
        sshUser: "admin",
        sshPort: "2222",
        hosts: haHosts().map((h, i) => ({ ...h, address: `n${i}.example.com`, internalAddress: h.address, hostKey: `${ED25519_KEY} root@n${i}`, ...(i === 0 ? { user: "root", port: 22 } : {}) })),
        kubernetes: { version: "v1.37.1", encryptionAlgorithm: "RSA-2048" },
        etcd: { version: "v3.5.21", sha256: { amd64: "A".repeat(64) } },
        cni: { plugin: "cilium", manifestUrl: "https://manifests.example.com/cilium-1.20.2.yaml" },
      }),
      [],
    ],
  ];
  for (const [what, config, warnings] of shapes) {
    it(what, async () => {
      const r = await runProgram(config);
      if (r.error) throw r.error;
      expect(r.harness.failures()).toEqual([]);
      expect(r.harness.commands().length).toBeGreaterThan(0);
      for (const w of warnings) expect(r.warnings.join("\n")).toContain(w);
      if (!warnings.length) expect(r.warnings.filter((w) => /not highly available|no standby/.test(w))).toEqual([]);
    });
  }

  it("fills defaults and normalises", () => {
    const raw = (values: Record<string, unknown>): RawConfig => ({
      stackName: "staging",
      values: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
      secretKeys: new Set(["sshPrivateKey"]),
    });
    const { spec } = parseClusterSpec(
      raw({
        sshPrivateKey: "k",
        sshUser: "ops",
        hosts: haHosts().map((h, i) => (i === 1 ? { ...h, hostKey: `${ED25519_KEY} comment here`, port: "2200" } : h)),
        loadBalancer: { vip: "10.0.0.100" },
        kubernetes: { version: "v1.37.2" },
      }),
    );
    expect(spec.clusterName).toBe("staging");
    expect(spec.kubernetes).toMatchObject({ version: "1.37.2", podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12", dnsDomain: "cluster.local", packages: "pkgs.k8s.io", encryptionAlgorithm: "ECDSA-P256" });
    expect(spec.kubernetes).toMatchObject({ bootstrapTokenTtl: "24h", containerd: { source: "upstream", version: "2.4.2", runcVersion: "1.5.3", registries: {} }, allowCgroupV1: false });
    expect(spec.kubernetes.imageRepository).toBeUndefined();
    expect(spec.kubernetes.containerd.downloadUrl).toBe("https://github.com/containerd/containerd/releases/download/v{version}/containerd-{version}-linux-{arch}.tar.gz");
    expect(spec.loadBalancer).toEqual({ engine: "haproxy", vip: "10.0.0.100", vipPrefix: 24, interface: "eth0", virtualRouterId: 51, port: 6443 });
    expect(spec.etcd).toMatchObject({ source: "download", dataDir: "/var/lib/etcd" });
    expect(spec.cni).toEqual({ plugin: "calico" });
    expect(spec.hosts[0]).toEqual({ name: "lb1", address: "10.0.0.11", internalAddress: "10.0.0.11", roles: ["loadbalancer"], user: "ops", port: 22, labels: {}, taints: [] });
    expect(spec.hosts[1].hostKey).toBe(ED25519_KEY);
    expect(spec.hosts[1].port).toBe(2200);
  });

  it("parses taints", () => {
    const hosts = haHosts();
    hosts[8] = { ...hosts[8], taints: ["dedicated=gpu:NoSchedule", "example.com/maintenance:NoExecute"] };
    const { spec } = parseClusterSpec({ stackName: "s", values: { sshPrivateKey: "k", hosts: JSON.stringify(hosts), loadBalancer: JSON.stringify({ vip: "10.0.0.100" }) }, secretKeys: new Set(["sshPrivateKey"]) });
    expect(spec.hosts[8].taints).toEqual([
      { key: "dedicated", value: "gpu", effect: "NoSchedule" },
      { key: "example.com/maintenance", effect: "NoExecute" },
    ]);
  });

  it("warns about hosts without host keys when strictHostKeys is false", async () => {
    const r = await runProgram(haConfig());
    expect(r.warnings.join("\n")).toMatch(/strictHostKeys is false and 10 host\(s\) have no hostKey/);
  });
});

describe("etcd.version with source apt", () => {
  const spec = (etcd: Record<string, unknown>) =>
    parseClusterSpec({ stackName: "s", values: { sshPrivateKey: "k", hosts: JSON.stringify(haHosts()), loadBalancer: JSON.stringify({ vip: "10.0.0.100" }), etcd: JSON.stringify(etcd) }, secretKeys: new Set(["sshPrivateKey"]) }).spec.etcd;

  it("is optional with apt (the distribution's etcd), defaulted (3.6.16) with download and preinstalled", () => {
    expect(spec({ source: "apt" }).version).toBeUndefined();
    expect(spec({ source: "apt", version: "v3.5.24" }).version).toBe("3.5.24");
    expect(spec({}).version).toBe("3.6.16");
    expect(spec({ source: "preinstalled" }).version).toBe("3.6.16");
  });

  it("apt without a version: accepted without a warning; every etcd host checks the distribution's etcd against kubeadm's minimum before installing it", async () => {
    const r = await runProgram(haConfig({ etcd: { source: "apt" } }));
    expect(r.error).toBeUndefined();
    expect(r.warnings.join("\n")).not.toMatch(/hakube:etcd/);
    const installs = r.harness.commands().filter((c) => /^etcd-install-/.test(c.name));
    expect(installs.map((c) => c.name).sort()).toEqual(["etcd-install-etcd1", "etcd-install-etcd2", "etcd-install-etcd3"]);
    for (const c of installs) {
      const text = String(c.inputs.create);
      expect(text).toContain("min=3.5.24");
      expect(text).toMatch(/etcd_accept "\$\(upstream_version "\$cand"\)" " \(apt's candidate; nothing installed\)"\n[\s\S]*hakube_apt_install etcd-server etcd-client/);
      expect(text).not.toContain("3.6.16 (needs");
    }
  });
});

describe("version warnings", () => {
  it("warns when external etcd is older than kubeadm accepts", async () => {
    const old = await runProgram(haConfig({ etcd: { source: "apt", version: "3.4.23" } }));
    expect(old.error).toBeUndefined();
    expect(old.warnings.join("\n")).toMatch(/hakube:etcd\.version: 3\.4\.23 is older than 3\.5\.24/);
    const current = await runProgram(haConfig());
    expect(current.warnings.join("\n")).not.toMatch(/hakube:etcd\.version/);
  });
});
