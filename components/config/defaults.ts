import * as semver from "semver";

/**
 * Every default the program applies, pinned in one place. `Pulumi.yaml` repeats the scalar
 * defaults for the CLI (a test keeps the two in sync).
 */

/** Default Kubernetes release (kubeadm, kubelet, kubectl from pkgs.k8s.io): the newest patch of the newest
 *  minor, as the Go module proxy serves k8s.io/kubernetes on 2026-12-02 (v1.37.2, 2026-10-27; docs/research.md §1). */
export const DEFAULT_KUBERNETES_VERSION = "1.37.2";

/** Default etcd release for `etcd.source: download` (kubeadm 1.37 accepts external etcd ≥ 3.5.24). */
export const DEFAULT_ETCD_VERSION = "3.6.16";

/** Upstream etcd release tarball; `{version}` and `{arch}` (amd64, arm64, …) are filled in on the host. */
export const DEFAULT_ETCD_DOWNLOAD_URL =
  "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-{arch}.tar.gz";

/** Default containerd for `kubernetes.containerd.source: upstream`: the newest patch of the newest line (2.4.2,
 *  2026-10-13, per the Go module proxy), which containerd's RELEASES.md (v2.4.2) lists for Kubernetes 1.37
 *  ("2.4.0+, 2.3.0+"; docs/research.md §5.1). */
export const DEFAULT_CONTAINERD_VERSION = "2.4.2";
/** runc installed next to an upstream containerd: the newest 1.5 patch (1.5.3, 2026-11-12; containerd 2.4.2's own
 *  script/setup/runc-version names 1.5.2, the line it is tested with). */
export const DEFAULT_RUNC_VERSION = "1.5.3";
/** Upstream containerd release tarball; `{version}` and `{arch}` are filled in on the host. */
export const DEFAULT_CONTAINERD_DOWNLOAD_URL =
  "https://github.com/containerd/containerd/releases/download/v{version}/containerd-{version}-linux-{arch}.tar.gz";
/** Upstream runc release binary; `{version}` and `{arch}` are filled in on the host. */
export const DEFAULT_RUNC_DOWNLOAD_URL = "https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}";
/** kubeadm's default image repository (`DefaultImageRepository` in kubeadm's v1beta4 defaults). */
export const DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io";
/** Where containerd reads registry host configuration (`hosts.toml` per registry namespace; containerd docs/hosts.md). */
export const CONTAINERD_CERTS_DIR = "/etc/containerd/certs.d";
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
    deployment: "systemd",
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
      downloadUrl: DEFAULT_CONTAINERD_DOWNLOAD_URL,
      runcDownloadUrl: DEFAULT_RUNC_DOWNLOAD_URL,
      restrictOomScoreAdj: false,
    },
    allowCgroupV1: false,
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

/** kubeadm's etcd `--listen-metrics-urls` port (http://127.0.0.1:2381: /livez, /readyz, /metrics) with `etcd.deployment: kubeadm`. */
export const ETCD_METRICS_PORT = 2381;

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
 * "Kubernetes Support" rows (v2.4.2's file, docs/research.md §5.1: 1.37 → 2.4.0+, 2.3.0+; 1.36 →
 * 2.3.0+, 2.2.0+; newer minors use the 1.37 row), and never below 2.0 because hakube writes the
 * version 3 config. Pure.
 */
export function containerdRanges(kubernetesVersion: string): VersionRange[] {
  const minor = semver.minor(kubernetesVersion);
  if (minor >= 37) return [{ min: "2.3.0" }];
  if (minor === 36) return [{ min: "2.2.0" }];
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
 * 3.10.2 for 1.36 and 1.37 — read from kubeadm v1.37.2's constants.go `PauseVersion`). Node preparation
 * asks the installed kubeadm (`kubeadm config images list`) and uses this only when kubeadm cannot tell.
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
  flannel: "0.28.10",
  /** documentation only: Cilium ships no plain manifest, `cni.manifestUrl` is required (docs/kubernetes.md). */
  cilium: "1.20.2",
} as const;

/**
 * cgroup v1 and the kubelet (docs/research.md §5.6): from 1.35 the kubelet refuses cgroup v1 unless
 * `failCgroupV1: false` (KEP-5573) and kubeadm's SystemVerification preflight fails on it; before
 * 1.35 v1 only warns. The field still exists in k8s.io/kubelet v0.38.0-beta.0: no release that hakube
 * knows has removed v1 support. Minors newer than this one are unverified (a warning).
 */
export const CGROUP_V1_NEWEST_CHECKED_MINOR = 38;
/** The first minor whose kubelet refuses cgroup v1 by default (`failCgroupV1` defaults to true). */
export const CGROUP_V1_FAIL_BY_DEFAULT_MINOR = 35;
