// hakube: a highly available Kubernetes cluster on your own hosts, over SSH.
// Reads the stack config, builds the components, exports the outputs (README "Outputs").
import { hostsWithRole, loadClusterSpec, portNeedsByHost } from "./components/config";
import { ControlPlane } from "./components/controlplane";
import { EtcdCluster } from "./components/etcd";
import { LoadBalancerPair } from "./components/loadbalancer";
import { ClusterPki } from "./components/pki";
import { Hosts } from "./components/remote";
import { WorkerPool } from "./components/workers";

const { spec, sshPrivateKey } = loadClusterSpec();
const role = (r: Parameters<typeof hostsWithRole>[1]) => hostsWithRole(spec, r);
const controlPlanes = role("controlplane");

const pki = new ClusterPki("pki", { clusterName: spec.clusterName, algorithm: spec.kubernetes.encryptionAlgorithm });
const hosts = new Hosts("hosts", { hosts: spec.hosts, sshPrivateKey, ports: portNeedsByHost(spec), certificateStarts: pki.caValidityStarts });

// Certificates issued for hosts are recorded for their preflights (clock check), which start every host's chain.
const etcd = new EtcdCluster("etcd", { hosts, members: role("etcd"), ca: pki.etcdCa, algorithm: pki.algorithm, etcd: spec.etcd, clusterName: spec.clusterName, kubernetes: spec.kubernetes });
for (const h of controlPlanes) hosts.certificateIssued(h, etcd.apiserverClient.validityStartTime);
for (const h of spec.hosts) hosts.preflight(h);

const loadBalancers = new LoadBalancerPair("lb", {
  clusterName: spec.clusterName,
  loadBalancer: spec.loadBalancer,
  hosts: role("loadbalancer"),
  controlPlanes,
  workers: role("worker"),
  kubernetesCaCertPem: pki.kubernetesCa.certPem,
  remote: hosts,
});

// kubeadm init waits for the etcd health gate and the VIP; joins follow one at a time.
const controlPlane = new ControlPlane("controlplane", {
  clusterName: spec.clusterName,
  hosts,
  controlPlanes,
  pki,
  kubernetes: spec.kubernetes,
  cni: spec.cni,
  etcd: { endpoints: etcd.endpoints, caCertPem: etcd.caCertPem, clientCertPem: etcd.apiserverClientCertPem, clientKeyPem: etcd.apiserverClientKeyPem, ready: [etcd.healthGate] },
  loadBalancer: { vip: loadBalancers.vip, port: loadBalancers.port, addresses: [...new Set(role("loadbalancer").flatMap((h) => [h.address, h.internalAddress]))], ready: loadBalancers.ready },
});

const workers = role("worker").filter((h) => !h.roles.includes("controlplane"));
if (workers.length > 0) {
  new WorkerPool("workers", { hosts, workers, joinInfo: controlPlane.joinInfo, kubernetes: spec.kubernetes, controlPlane: controlPlane.firstHost, dependsOn: [controlPlane.initialized] });
}

export const clusterName = spec.clusterName;
export const kubernetesVersion = spec.kubernetes.version;
export const vip = loadBalancers.vip;
export const apiServerEndpoint = loadBalancers.endpoint;
export const clusterCaCertificate = pki.kubernetesCa.certPem;
export const etcdEndpoints = etcd.endpoints;
export const nodes = spec.hosts.map((h) => ({ name: h.name, internalAddress: h.internalAddress, roles: h.roles }));
export const kubeconfig = controlPlane.kubeconfig;
export const joinInfo = controlPlane.joinInfo;
