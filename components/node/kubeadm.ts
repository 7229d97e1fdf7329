/**
 * kubeadm configuration documents (kubeadm.k8s.io/v1beta4, kubelet.config.k8s.io/v1beta1), built
 * as objects and serialised with `yaml`. Pure: no Pulumi import.
 *
 * Field names and types follow docs/research.md §2 (the v1beta4 Go types); test/kubeadm.test.ts
 * checks every rendered document against a schema of those types.
 */
import { stringify } from "yaml";
import { APISERVER_PORT } from "../config/defaults";
import type { EncryptionAlgorithm, HostSpec, Taint } from "../config/spec";
import { CRI_SOCKET } from "./render";

export const KUBEADM_API = "kubeadm.k8s.io/v1beta4";
export const KUBELET_API = "kubelet.config.k8s.io/v1beta1";
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

export function nodeRegistration(host: KubeadmHost): Record<string, unknown> {
  const extra = [{ name: "node-ip", value: host.internalAddress }];
  const labels = nodeLabelsArg(host.labels);
  if (labels) extra.push({ name: "node-labels", value: labels });
  return {
    name: host.name,
    criSocket: CRI_SOCKET,
    taints: nodeTaints(host),
    kubeletExtraArgs: extra,
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

export function initConfiguration(host: KubeadmHost, token: string, ttlSeconds: number): Record<string, unknown> {
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
    nodeRegistration: nodeRegistration(host),
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
    networking: { podSubnet: c.podSubnet, serviceSubnet: c.serviceSubnet, dnsDomain: c.dnsDomain },
    apiServer: { certSANs: [...new Set(c.certSANs)].sort() },
    etcd: { external: { endpoints: [...c.etcdEndpoints], ...ETCD_FILES } },
  };
}

/** The kubelet's configuration for every node (kubeadm uploads it at init; joins read it from the cluster). */
export function kubeletConfiguration(): Record<string, unknown> {
  return {
    apiVersion: KUBELET_API,
    kind: "KubeletConfiguration",
    cgroupDriver: "systemd",
    failSwapOn: true,
  };
}

function discovery(d: DiscoveryInput): Record<string, unknown> {
  return { bootstrapToken: { apiServerEndpoint: d.endpoint, token: d.token, caCertHashes: [d.caCertHash] } };
}

export function controlPlaneJoinConfiguration(host: KubeadmHost, d: DiscoveryInput): Record<string, unknown> {
  return {
    apiVersion: KUBEADM_API,
    kind: "JoinConfiguration",
    nodeRegistration: nodeRegistration(host),
    discovery: discovery(d),
    controlPlane: { localAPIEndpoint: { advertiseAddress: host.internalAddress, bindPort: APISERVER_PORT } },
  };
}

export function workerJoinConfiguration(host: KubeadmHost, d: DiscoveryInput): Record<string, unknown> {
  return {
    apiVersion: KUBEADM_API,
    kind: "JoinConfiguration",
    nodeRegistration: nodeRegistration(host),
    discovery: discovery(d),
  };
}

/** Several documents as one multi-document YAML file. */
export function renderDocuments(docs: Record<string, unknown>[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}

/** The init file of the first control plane: InitConfiguration + ClusterConfiguration + KubeletConfiguration. */
export function renderInitConfig(host: KubeadmHost, cluster: ClusterInput, token: string, ttlSeconds: number): string {
  return renderDocuments([initConfiguration(host, token, ttlSeconds), clusterConfiguration(cluster), kubeletConfiguration()]);
}

export function renderControlPlaneJoinConfig(host: KubeadmHost, d: DiscoveryInput): string {
  return renderDocuments([controlPlaneJoinConfiguration(host, d)]);
}

export function renderWorkerJoinConfig(host: KubeadmHost, d: DiscoveryInput): string {
  return renderDocuments([workerJoinConfiguration(host, d)]);
}

/** A file's text as bash comment lines (for previews of files that reach the host on stdin). */
export function asComment(title: string, text: string): string {
  return [`# ${title}`, ...text.replace(/\n$/, "").split("\n").map((l) => `#   ${l}`)].join("\n");
}
