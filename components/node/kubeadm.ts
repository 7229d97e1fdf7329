/**
 * kubeadm configuration documents (kubeadm.k8s.io/v1beta4, kubelet.config.k8s.io/v1beta1), built
 * as objects and serialised with `yaml`. Pure: no Pulumi import.
 *
 * Field names and types follow docs/research.md §2 (the v1beta4 Go types); test/kubeadm.test.ts
 * checks every rendered document against a schema of those types.
 */
import * as semver from "semver";
import { stringify } from "yaml";
import { APISERVER_PORT, CGROUP_V1_FAIL_BY_DEFAULT_MINOR } from "../config/defaults";
import type { EncryptionAlgorithm, HostSpec, KubernetesSpec, Taint } from "../config/spec";
import { CRI_SOCKET } from "./render";

export const KUBEADM_API = "kubeadm.k8s.io/v1beta4";
export const KUBELET_API = "kubelet.config.k8s.io/v1beta1";
export const KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1";
export const PKI_DIR = "/etc/kubernetes/pki";
export const ETCD_FILES = {
  caFile: `${PKI_DIR}/etcd/ca.crt`,
  certFile: `${PKI_DIR}/apiserver-etcd-client.crt`,
  keyFile: `${PKI_DIR}/apiserver-etcd-client.key`,
} as const;
export const CONTROL_PLANE_TAINT: Taint = { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" };
/** kubeadm's group for bootstrap tokens that join nodes. */
export const BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token";
/** What the previews show instead of a secret. */
export const REDACTED = "<secret: on stdin>";

/** The part of a host that kubeadm's documents use. */
export type KubeadmHost = Pick<HostSpec, "name" | "internalAddress" | "roles" | "labels" | "taints">;

export interface ClusterInput {
  clusterName: string;
  kubernetesVersion: string;
  /** `<vip>:<port>` */
  controlPlaneEndpoint: string;
  podSubnet: string;
  serviceSubnet: string;
  dnsDomain: string;
  /** Extra API server certificate SANs: the VIP and every load-balancer address. */
  certSANs: string[];
  etcdEndpoints: string[];
  encryptionAlgorithm: EncryptionAlgorithm;
  /** kubeadm's `imageRepository` (unset: kubeadm's default, registry.k8s.io). */
  imageRepository?: string;
  /** cgroup v1 hosts allowed: KubeletConfiguration `failCgroupV1: false`, SystemVerification ignored. */
  allowCgroupV1?: boolean;
  /** Deep-merged over the generated KubeletConfiguration. */
  kubeletConfiguration?: Record<string, unknown>;
  /** Deep-merged over a KubeProxyConfiguration, emitted only when given. */
  kubeProxyConfiguration?: Record<string, unknown>;
}

/** Per-node kubeadm options that do not depend on the host. */
export interface NodeOptions {
  /** kubeadm preflight checks whose errors are ignored (`nodeRegistration.ignorePreflightErrors`). */
  ignorePreflightErrors?: string[];
}

/**
 * The kubeadm preflight errors a node must ignore: `SystemVerification` on cgroup v1 hosts with
 * `allowCgroupV1`, from 1.35 (kubeadm's cgroups validator fails on v1 for kubelet ≥ 1.35 and tells
 * to skip it once `failCgroupV1: false` is set; before 1.35 it only warns). Nothing else.
 */
export function preflightErrorsToIgnore(k: Pick<KubernetesSpec, "version"> & { allowCgroupV1?: boolean }): string[] {
  return k.allowCgroupV1 && semver.minor(k.version) >= CGROUP_V1_FAIL_BY_DEFAULT_MINOR ? ["SystemVerification"] : [];
}

/** `patch` deep-merged over `base`: objects merge key by key, anything else (lists too) replaces. New objects; inputs untouched. */
export function deepMerge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : structuredClone(v);
  return out;
}

/** Discovery for joins: endpoint `<vip>:<port>`, the bootstrap token, `sha256:<hex>` of the cluster CA's public key. */
export interface DiscoveryInput {
  endpoint: string;
  token: string;
  caCertHash: string;
}

/**
 * The node's taints at registration. A control plane keeps kubeadm's control-plane taint unless
 * it is also a worker; the host's own taints come on top. Always an explicit list (never null, so
 * kubeadm adds nothing on its own).
 */
export function nodeTaints(host: KubeadmHost): Taint[] {
  const own = host.taints.map((t) => (t.value === undefined ? { key: t.key, effect: t.effect } : { key: t.key, value: t.value, effect: t.effect }));
  const isCp = host.roles.includes("controlplane");
  const base = isCp && !host.roles.includes("worker") ? [CONTROL_PLANE_TAINT] : [];
  const out: Taint[] = [];
  for (const t of [...base, ...own]) if (!out.some((o) => o.key === t.key && o.effect === t.effect)) out.push(t);
  return out;
}

/** `--node-labels` value: `k=v` pairs sorted by key. */
export function nodeLabelsArg(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

export function nodeRegistration(host: KubeadmHost, o: NodeOptions = {}): Record<string, unknown> {
  const extra = [{ name: "node-ip", value: host.internalAddress }];
  const labels = nodeLabelsArg(host.labels);
  if (labels) extra.push({ name: "node-labels", value: labels });
  return {
    name: host.name,
    criSocket: CRI_SOCKET,
    taints: nodeTaints(host),
    kubeletExtraArgs: extra,
    ...(o.ignorePreflightErrors?.length ? { ignorePreflightErrors: [...o.ignorePreflightErrors] } : {}),
  };
}

/** A Go duration as metav1.Duration prints it: 86400 → `24h0m0s`, 0 → `0s`. */
export function goDuration(seconds: number): string {
  if (seconds === 0) return "0s";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h}h${m}m${s}s`;
}

export function initConfiguration(host: KubeadmHost, token: string, ttlSeconds: number, o: NodeOptions = {}): Record<string, unknown> {
  return {
    apiVersion: KUBEADM_API,
    kind: "InitConfiguration",
    bootstrapTokens: [
      {
        token,
        description: "hakube bootstrap token",
        ttl: goDuration(ttlSeconds),
        usages: ["signing", "authentication"],
        groups: [BOOTSTRAP_GROUP],
      },
    ],
    localAPIEndpoint: { advertiseAddress: host.internalAddress, bindPort: APISERVER_PORT },
    nodeRegistration: nodeRegistration(host, o),
  };
}

export function clusterConfiguration(c: ClusterInput): Record<string, unknown> {
  return {
    apiVersion: KUBEADM_API,
    kind: "ClusterConfiguration",
    clusterName: c.clusterName,
    kubernetesVersion: `v${c.kubernetesVersion}`,
    controlPlaneEndpoint: c.controlPlaneEndpoint,
    encryptionAlgorithm: c.encryptionAlgorithm,
    certificatesDir: PKI_DIR,
    ...(c.imageRepository ? { imageRepository: c.imageRepository } : {}),
    networking: { podSubnet: c.podSubnet, serviceSubnet: c.serviceSubnet, dnsDomain: c.dnsDomain },
    apiServer: { certSANs: [...new Set(c.certSANs)].sort() },
    etcd: { external: { endpoints: [...c.etcdEndpoints], ...ETCD_FILES } },
  };
}

/**
 * The kubelet's configuration for every node (kubeadm uploads it at init; joins read it from the
 * cluster): the systemd cgroup driver, `failCgroupV1: false` with `allowCgroupV1`, then the user's
 * `kubeletConfiguration` deep-merged over it (the config refuses the keys set here).
 */
export function kubeletConfiguration(c: Pick<ClusterInput, "allowCgroupV1" | "kubeletConfiguration"> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    apiVersion: KUBELET_API,
    kind: "KubeletConfiguration",
    cgroupDriver: "systemd",
    failSwapOn: true,
    ...(c.allowCgroupV1 ? { failCgroupV1: false } : {}),
  };
  return c.kubeletConfiguration ? deepMerge(base, c.kubeletConfiguration) : base;
}

/** kube-proxy's configuration (kubeadm fills clusterCIDR from podSubnet and uploads it at init): the user's `kubeProxyConfiguration`. */
export function kubeProxyConfiguration(patch: Record<string, unknown>): Record<string, unknown> {
  return deepMerge({ apiVersion: KUBE_PROXY_API, kind: "KubeProxyConfiguration" }, patch);
}

function discovery(d: DiscoveryInput): Record<string, unknown> {
  return { bootstrapToken: { apiServerEndpoint: d.endpoint, token: d.token, caCertHashes: [d.caCertHash] } };
}

export function controlPlaneJoinConfiguration(host: KubeadmHost, d: DiscoveryInput, o: NodeOptions = {}): Record<string, unknown> {
  return {
    apiVersion: KUBEADM_API,
    kind: "JoinConfiguration",
    nodeRegistration: nodeRegistration(host, o),
    discovery: discovery(d),
    controlPlane: { localAPIEndpoint: { advertiseAddress: host.internalAddress, bindPort: APISERVER_PORT } },
  };
}

export function workerJoinConfiguration(host: KubeadmHost, d: DiscoveryInput, o: NodeOptions = {}): Record<string, unknown> {
  return {
    apiVersion: KUBEADM_API,
    kind: "JoinConfiguration",
    nodeRegistration: nodeRegistration(host, o),
    discovery: discovery(d),
  };
}

/** Several documents as one multi-document YAML file. */
export function renderDocuments(docs: Record<string, unknown>[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}

/** The init file of the first control plane: InitConfiguration + ClusterConfiguration + KubeletConfiguration (+ KubeProxyConfiguration when configured). */
export function renderInitConfig(host: KubeadmHost, cluster: ClusterInput, token: string, ttlSeconds: number): string {
  const o = { ignorePreflightErrors: preflightErrorsToIgnore({ version: cluster.kubernetesVersion, allowCgroupV1: cluster.allowCgroupV1 }) };
  return renderDocuments([
    initConfiguration(host, token, ttlSeconds, o),
    clusterConfiguration(cluster),
    kubeletConfiguration(cluster),
    ...(cluster.kubeProxyConfiguration ? [kubeProxyConfiguration(cluster.kubeProxyConfiguration)] : []),
  ]);
}

export function renderControlPlaneJoinConfig(host: KubeadmHost, d: DiscoveryInput, o: NodeOptions = {}): string {
  return renderDocuments([controlPlaneJoinConfiguration(host, d, o)]);
}

export function renderWorkerJoinConfig(host: KubeadmHost, d: DiscoveryInput, o: NodeOptions = {}): string {
  return renderDocuments([workerJoinConfiguration(host, d, o)]);
}

/** A file's text as bash comment lines (for previews of files that reach the host on stdin). */
export function asComment(title: string, text: string): string {
  return [`# ${title}`, ...text.replace(/\n$/, "").split("\n").map((l) => `#   ${l}`)].join("\n");
}
