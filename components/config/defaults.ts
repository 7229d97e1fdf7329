import * as semver from "semver";

/**
 * Every default the program applies, pinned in one place. `Pulumi.yaml` repeats the scalar
 * defaults for the CLI (a test keeps the two in sync).
 */

/** Default Kubernetes release (kubeadm, kubelet, kubectl from pkgs.k8s.io): the newest patch of the newest
 *  minor confirmed on 2026-11-30 (1.37.1, 2026-09-15; see docs/research.md). */
export const DEFAULT_KUBERNETES_VERSION = "1.37.1";

/** Default etcd release for `etcd.source: download` (kubeadm 1.37 accepts external etcd ≥ 3.5.24). */
export const DEFAULT_ETCD_VERSION = "3.6.16";

/** Upstream etcd release tarball; `{version}` and `{arch}` (amd64, arm64, …) are filled in on the host. */
export const DEFAULT_ETCD_DOWNLOAD_URL =
  "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-{arch}.tar.gz";

/** Default containerd for `kubernetes.containerd.source: upstream`: the newest confirmed patch of the 2.3 LTS line
 *  (2.3.4, 2026-08; LTS until 2028-04), inside the Kubernetes 1.36/1.37 support range (2.2.0+, 2.3.0+; docs/research.md §5). */
export const DEFAULT_CONTAINERD_VERSION = "2.3.4";
/** runc installed next to an upstream containerd (runc 1.5.1, 2026-07, the version containerd's release branches moved to). */
export const DEFAULT_RUNC_VERSION = "1.5.1";
/** Default bootstrap token lifetime (kubeadm's own default): refreshed before every join this program runs. */
export const DEFAULT_BOOTSTRAP_TOKEN_TTL = "24h";

export const DEFAULTS = {
  sshUser: "root",
  sshPort: 22,
  strictHostKeys: false,
  loadBalancer: {
    engine: "haproxy",
    vipPrefix: 24,
    interface: "eth0",
    virtualRouterId: 51,
    port: 6443,
  },
  etcd: {
    version: DEFAULT_ETCD_VERSION,
    source: "download",
    downloadUrl: DEFAULT_ETCD_DOWNLOAD_URL,
    dataDir: "/var/lib/etcd",
    /** etcd's own defaults: measured in docs/etcd.md ("Leader failover"), chosen for the ≤ 3 s write-outage goal. */
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
  },
  kubernetes: {
    version: DEFAULT_KUBERNETES_VERSION,
    podSubnet: "10.244.0.0/16",
    serviceSubnet: "10.96.0.0/12",
    dnsDomain: "cluster.local",
    packages: "pkgs.k8s.io",
    encryptionAlgorithm: "ECDSA-P256",
    bootstrapTokenTtl: DEFAULT_BOOTSTRAP_TOKEN_TTL,
    containerd: {
      source: "upstream",
      version: DEFAULT_CONTAINERD_VERSION,
      runcVersion: DEFAULT_RUNC_VERSION,
    },
  },
  cni: {
    plugin: "calico",
  },
} as const;

/** Ports each role listens on (used by validation and by the host preflight). */
export const ROLE_PORTS = {
  etcd: [2379, 2380],
  /** kube-apiserver, kube-controller-manager, kube-scheduler */
  controlplane: [6443, 10257, 10259],
  /** kubelet and kube-proxy run on every Kubernetes node (control planes and workers) */
  node: [10250, 10256],
} as const;

/** The API server's own port on control-plane hosts (the load balancers forward to it). */
export const APISERVER_PORT = 6443;

/**
 * Loopback port of the load balancers' local health endpoint (keepalived's check script probes
 * it; HAProxy also serves its stats page there). Reserved on load-balancer hosts.
 */
export const LB_HEALTH_PORT = 8404;

/** kubeadm.k8s.io/v1beta4 (the only kubeadm config API kubeadm ≥ 1.36 reads) exists since Kubernetes 1.31. */
export const MIN_KUBERNETES_VERSION = "1.31.0";

/** kubeadm's `MinExternalEtcdVersion` (its preflight refuses older external etcd; docs/research.md §9). */
export const MIN_EXTERNAL_ETCD_VERSION = "3.5.24";

/** A range of containerd versions: `min` ≤ v (< `below` when given). */
export interface VersionRange {
  min: string;
  below?: string;
}

/**
 * The containerd versions hakube accepts for a Kubernetes release: containerd's RELEASES.md
 * "Kubernetes Support" rows (docs/research.md §5.1; 1.37 has no row yet, the 1.36 row is used), and
 * never below 2.0 because hakube writes the version 3 config. Pure.
 */
export function containerdRanges(kubernetesVersion: string): VersionRange[] {
  const minor = semver.minor(kubernetesVersion);
  if (minor >= 36) return [{ min: "2.2.0" }];
  if (minor === 35) return [{ min: "2.2.0" }, { min: "2.1.5", below: "2.2.0" }];
  if (minor === 34) return [{ min: "2.1.3" }, { min: "2.0.6", below: "2.1.0" }];
  return [{ min: "2.0.0" }];
}

/** Human form of the ranges: "2.2.0+, 2.1.5+ (2.1.x)". */
export function describeRanges(ranges: VersionRange[]): string {
  return ranges.map((r) => (r.below ? `${r.min}+ (below ${r.below})` : `${r.min}+`)).join(" or ");
}

/**
 * kubeadm's pause (sandbox) image tag per Kubernetes minor (docs/research.md §5.3: 3.10.1 for 1.34/1.35,
 * 3.10.2 for 1.36; 1.37 unconfirmed, 3.10.2 assumed). Node preparation asks the installed kubeadm
 * (`kubeadm config images list`) and uses this only when kubeadm cannot tell.
 */
export function defaultPauseTag(kubernetesVersion: string): string {
  const minor = semver.minor(kubernetesVersion);
  if (minor >= 36) return "3.10.2";
  if (minor >= 34) return "3.10.1";
  return "3.10";
}

/** Pinned CNI releases (docs/research.md §7, §11). */
export const CNI_VERSIONS = {
  calico: "3.32.2",
  flannel: "0.28.9",
  /** documentation only: Cilium ships no plain manifest, `cni.manifestUrl` is required (docs/kubernetes.md). */
  cilium: "1.20.2",
} as const;
