/**
 * The air-gapped and container-host settings of `hakube:kubernetes` (imageRepository, containerd
 * download URLs and digests, registry mirrors, allowCgroupV1, kubelet/kube-proxy configuration
 * patches): every invalid value is named by its key path, warnings name theirs, nothing is
 * registered for a bad config, and valid values come through as typed settings.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseClusterSpec, parseNodePoolConfig, type RawConfig } from "../components/config/spec";
import { haHosts } from "./harness/fixtures";
import { runProgram, TEST_SSH_KEY } from "./harness/program";

const CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fub3RhcmVhbGNlcnQwCgYIKoZIzj0EAwIwADAeFw0y\n-----END CERTIFICATE-----\n";

const raw = (kubernetes: unknown): RawConfig => ({
  stackName: "s",
  values: { sshPrivateKey: "k", hosts: JSON.stringify(haHosts()), loadBalancer: JSON.stringify({ vip: "10.0.0.100" }), kubernetes: JSON.stringify(kubernetes) },
  secretKeys: new Set(["sshPrivateKey"]),
});
const problems = (kubernetes: unknown): string[] => {
  try {
    parseClusterSpec(raw(kubernetes));
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};
const parse = (kubernetes: unknown) => parseClusterSpec(raw(kubernetes));

const BAD: [string, unknown, (string | RegExp)[]][] = [
  ["imageRepository with a scheme", { imageRepository: "https://mirror.lab:5000/k8s" }, ['hakube:kubernetes.imageRepository: "https://mirror.lab:5000/k8s": give host[:port][/path] without the scheme']],
  ["imageRepository not a repository", { imageRepository: "Mirror Lab/K8s" }, ['hakube:kubernetes.imageRepository: "Mirror Lab/K8s" is not an image repository']],
  ["imageRepository with a bad port", { imageRepository: "mirror.lab:99999/k8s" }, ['hakube:kubernetes.imageRepository: "mirror.lab:99999/k8s" is not an image repository']],
  ["imageRepository typo", { imageRepositry: "mirror.lab" }, ['hakube:kubernetes.imageRepositry: unknown key (did you mean "imageRepository"?)']],
  ["allowCgroupV1 not a boolean", { allowCgroupV1: "yes" }, ['hakube:kubernetes.allowCgroupV1: expected true or false, got "yes"']],
  ["allowCgroupV1 typo", { allowCgroupv1: true }, ['hakube:kubernetes.allowCgroupv1: unknown key (did you mean "allowCgroupV1"?)']],
  ["containerd downloadUrl without {version}", { containerd: { downloadUrl: "http://files.lab/containerd.tar.gz" } }, ['hakube:kubernetes.containerd.downloadUrl: "http://files.lab/containerd.tar.gz" must contain {version}']],
  ["runcDownloadUrl not a URL", { containerd: { runcDownloadUrl: "files.lab/runc/{version}" } }, ['hakube:kubernetes.containerd.runcDownloadUrl: "files.lab/runc/{version}" is not an http(s) URL']],
  ["containerd sha256 not a digest", { containerd: { sha256: { amd64: "abc" } } }, ['hakube:kubernetes.containerd.sha256.amd64: "abc" is not a SHA-256 hex digest']],
  ["runcSha256 for an unknown arch", { containerd: { runcSha256: { x86: "a".repeat(64) } } }, [/^hakube:kubernetes\.containerd\.runcSha256(\.x86)?: /]],
  ["download settings with source distribution", { containerd: { source: "distribution", downloadUrl: "http://f/{version}", sha256: { amd64: "a".repeat(64) }, runcSha256: { amd64: "b".repeat(64) } } }, [
    'hakube:kubernetes.containerd.downloadUrl: is only used with source "upstream"',
    'hakube:kubernetes.containerd.sha256: is only used with source "upstream"',
    'hakube:kubernetes.containerd.runcSha256: is only used with source "upstream"',
  ]],
  ["downloadUrl typo", { containerd: { downloadURL: "http://f/{version}" } }, ['hakube:kubernetes.containerd.downloadURL: unknown key (did you mean "downloadUrl"?)']],
  ["registry namespace not a host", { containerd: { registries: { "https://registry.k8s.io": { mirrors: [{ url: "https://m.lab" }] } } } }, ['hakube:kubernetes.containerd.registries["https://registry.k8s.io"]: registry "https://registry.k8s.io" is not a registry host[:port]']],
  ["registry without server or mirrors", { containerd: { registries: { "registry.k8s.io": {} } } }, ['hakube:kubernetes.containerd.registries["registry.k8s.io"]: needs a server or at least one mirror']],
  ["plain-HTTP mirror without plainHttp", { containerd: { registries: { "registry.k8s.io": { mirrors: [{ url: "http://10.0.0.5:5000" }] } } } }, ['hakube:kubernetes.containerd.registries["registry.k8s.io"].mirrors[0].url: "http://10.0.0.5:5000" is plain HTTP: set plainHttp: true']],
  ["plainHttp on an https mirror", { containerd: { registries: { "registry.k8s.io": { mirrors: [{ url: "https://m.lab", plainHttp: true }] } } } }, ['hakube:kubernetes.containerd.registries["registry.k8s.io"].mirrors[0].plainHttp: is true but url "https://m.lab" is not http://']],
  ["skipVerify refused", { containerd: { registries: { "registry.k8s.io": { mirrors: [{ url: "https://m.lab", skipVerify: true }] } } } }, ['hakube:kubernetes.containerd.registries["registry.k8s.io"].mirrors[0].skipVerify: is not supported: skipping TLS verification']],
  ["ca not PEM (a path)", { containerd: { registries: { "registry.k8s.io": { mirrors: [{ url: "https://m.lab", ca: "/etc/ssl/m.crt" }] } } } }, ['hakube:kubernetes.containerd.registries["registry.k8s.io"].mirrors[0].ca: is not PEM CA certificate text']],
  ["ca on a plain-HTTP server", { containerd: { registries: { "10.0.0.5:5000": { server: { url: "http://10.0.0.5:5000", plainHttp: true, ca: CA } } } } }, ['hakube:kubernetes.containerd.registries["10.0.0.5:5000"].server.ca: has no effect on a plain-HTTP endpoint']],
  ["unknown capability", { containerd: { registries: { "docker.io": { mirrors: [{ url: "https://m.lab", capabilities: ["pull", "fetch"] }] } } } }, ['hakube:kubernetes.containerd.registries["docker.io"].mirrors[0].capabilities[1]: "fetch" is not one of pull, resolve, push']],
  ["mirror key typo", { containerd: { registries: { "docker.io": { mirror: [{ url: "https://m.lab" }] } } } }, ['hakube:kubernetes.containerd.registries["docker.io"].mirror: unknown key (did you mean "mirrors"?)']],
  ["kubelet patch: a key hakube owns", { kubeletConfiguration: { cgroupDriver: "cgroupfs", clusterDNS: ["10.96.0.10"], failCgroupV1: false } }, [
    "hakube:kubernetes.kubeletConfiguration.cgroupDriver: is owned by hakube: systemd",
    "hakube:kubernetes.kubeletConfiguration.clusterDNS: is set by kubeadm from serviceSubnet",
    "hakube:kubernetes.kubeletConfiguration.failCgroupV1: is owned by hakube: set hakube:kubernetes.allowCgroupV1 instead",
  ]],
  ["kubelet patch: not a KubeletConfiguration field", { kubeletConfiguration: { maxPod: 200 } }, ['hakube:kubernetes.kubeletConfiguration.maxPod: is not a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) field (did you mean "maxPods"?)']],
  ["kubelet patch: null", { kubeletConfiguration: { evictionHard: { "memory.available": null } } }, ['hakube:kubernetes.kubeletConfiguration.evictionHard["memory.available"]: is null: omit the key instead']],
  ["kube-proxy patch: clusterCIDR and the kubeconfig are kubeadm's", { kubeProxyConfiguration: { clusterCIDR: "10.1.0.0/16", clientConnection: { kubeconfig: "/x" } } }, [
    "hakube:kubernetes.kubeProxyConfiguration.clusterCIDR: is set by kubeadm from podSubnet",
    "hakube:kubernetes.kubeProxyConfiguration.clientConnection.kubeconfig: is set by kubeadm",
  ]],
  ["kube-proxy patch: typo", { kubeProxyConfiguration: { contrack: { maxPerCore: 0 } } }, ['hakube:kubernetes.kubeProxyConfiguration.contrack: is not a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) field (did you mean "conntrack"?)']],
  ["kube-proxy patch not an object", { kubeProxyConfiguration: "conntrack.maxPerCore=0" }, [/^hakube:kubernetes\.kubeProxyConfiguration: expected an object/]],
  ["cgroup v1 with singleProcessOOMKill: false", { allowCgroupV1: true, kubeletConfiguration: { singleProcessOOMKill: false } }, ["hakube:kubernetes.kubeletConfiguration.singleProcessOOMKill: must not be false on cgroup v1 hosts"]],
];

describe("invalid air-gapped / container-host settings: named by key path", () => {
  for (const [what, k, expected] of BAD) {
    it(what, () => {
      const list = problems(k);
      expect(list.length, "the config must be refused").toBeGreaterThan(0);
      for (const e of expected) {
        if (typeof e === "string") expect(list.some((l) => l.startsWith(e)), `"${e}" in:\n${list.join("\n")}`).toBe(true);
        else expect(list.some((l) => e.test(l)), `${e} in:\n${list.join("\n")}`).toBe(true);
      }
    });
  }
  it("a bad setting registers nothing (the whole program)", async () => {
    const r = await runProgram({ sshPrivateKey: TEST_SSH_KEY, hosts: haHosts(), loadBalancer: { vip: "10.0.0.100" }, kubernetes: { containerd: { registries: { "docker.io": { mirrors: [{ url: "https://m.lab", skipVerify: true }] } } } } });
    expect(r.error?.message).toContain('hakube:kubernetes.containerd.registries["docker.io"].mirrors[0].skipVerify: is not supported');
    expect(r.harness.registrations).toEqual([]);
  });
  it("the worker-pool parser applies the same rules, under its namespace", () => {
    expect(() => parseNodePoolConfig({ namespace: "workerPool", hosts: [{ name: "w", address: "10.0.0.9", roles: ["worker"] }], kubernetes: { kubeletConfiguration: { cgroupDriver: "cgroupfs" } } })).toThrow(
      /workerPool:kubernetes\.kubeletConfiguration\.cgroupDriver: is owned by hakube/,
    );
    expect(() => parseNodePoolConfig({ namespace: "workerPool", hosts: [{ name: "w", address: "10.0.0.9", roles: ["worker"] }], kubernetes: { kubeProxyConfiguration: { conntrack: { maxPerCore: 0 } } } })).toThrow(
      /workerPool:kubernetes\.kubeProxyConfiguration: has no effect on nodes that join an existing cluster/,
    );
    expect(() => parseNodePoolConfig({ namespace: "workerPool", hosts: [{ name: "w", address: "10.0.0.9", roles: ["worker"] }], kubernetes: { containerd: { registries: { "docker.io": { mirrors: [{ url: "http://m" }] } } } } })).toThrow(
      /workerPool:kubernetes\.containerd\.registries\["docker\.io"\]\.mirrors\[0\]\.url: "http:\/\/m" is plain HTTP/,
    );
    const { warnings } = parseNodePoolConfig({ namespace: "workerPool", hosts: [{ name: "w", address: "10.0.0.9", roles: ["worker"] }], kubernetes: { allowCgroupV1: true } });
    expect(warnings.join("\n")).toMatch(/^workerPool:kubernetes\.allowCgroupV1: cgroup v1 is unsupported since Kubernetes 1\.35/);
  });
});

describe("valid settings", () => {
  it("come through typed, with defaults filled (capabilities pull+resolve, plainHttp false)", () => {
    const { spec } = parse({
      imageRepository: "mirror.lab:5000/k8s",
      containerd: {
        downloadUrl: "http://files.lab/containerd/v{version}/containerd-{version}-linux-{arch}.tar.gz",
        sha256: { amd64: "A".repeat(64) },
        runcDownloadUrl: "http://files.lab/runc/v{version}/runc.{arch}",
        registries: {
          "registry.k8s.io": { mirrors: [{ url: "https://mirror.lab:5000", ca: CA }] },
          "10.0.0.5:5000": { server: { url: "http://10.0.0.5:5000", plainHttp: true } },
          _default: { mirrors: [{ url: "https://mirror.lab:5000", capabilities: ["pull"] }] },
        },
      },
      kubeProxyConfiguration: { conntrack: { maxPerCore: 0 } },
    });
    expect(spec.kubernetes.imageRepository).toBe("mirror.lab:5000/k8s");
    expect(spec.kubernetes.containerd.sha256).toEqual({ amd64: "a".repeat(64) });
    expect(spec.kubernetes.containerd.registries).toEqual({
      "registry.k8s.io": { mirrors: [{ url: "https://mirror.lab:5000", plainHttp: false, ca: CA, capabilities: ["pull", "resolve"] }] },
      "10.0.0.5:5000": { server: { url: "http://10.0.0.5:5000", plainHttp: true }, mirrors: [] },
      _default: { mirrors: [{ url: "https://mirror.lab:5000", plainHttp: false, capabilities: ["pull"] }] },
    });
    expect(spec.kubernetes.kubeProxyConfiguration).toEqual({ conntrack: { maxPerCore: 0 } });
  });
  it("allowCgroupV1 warns (the release may drop it); before 1.35 it says it is not needed; failSwapOn warns with its key path", () => {
    expect(parse({ allowCgroupV1: true }).warnings.join("\n")).toMatch(/^hakube:kubernetes\.allowCgroupV1: cgroup v1 is unsupported since Kubernetes 1\.35 \(KEP-5573\) and a later release will remove it/m);
    expect(parse({ allowCgroupV1: true, version: "1.34.3", containerd: { version: "2.1.4" } }).warnings.join("\n")).toMatch(/hakube:kubernetes\.allowCgroupV1: Kubernetes 1\.34\.3 still runs on cgroup v1 by default/);
    expect(parse({ allowCgroupV1: true, version: "1.39.0" }).warnings.join("\n")).toMatch(/has not checked whether the kubelet of Kubernetes 1\.39\.0 still accepts failCgroupV1: false/);
    expect(parse({}).warnings.join("\n")).not.toMatch(/allowCgroupV1/);
    expect(parse({ kubeletConfiguration: { failSwapOn: false } }).warnings.join("\n")).toMatch(/hakube:kubernetes\.kubeletConfiguration\.failSwapOn: node preparation turns swap off/);
  });
});
