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
  },
  kubernetes: {
    version: DEFAULT_KUBERNETES_VERSION,
    podSubnet: "10.244.0.0/16",
    serviceSubnet: "10.96.0.0/12",
    dnsDomain: "cluster.local",
    packages: "pkgs.k8s.io",
    encryptionAlgorithm: "ECDSA-P256",
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
