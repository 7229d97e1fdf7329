// hakube: a highly available Kubernetes cluster on your own hosts, over SSH.
// Reads the stack config, builds the components, exports the outputs (README "Outputs").
import * as pulumi from "@pulumi/pulumi";
import { hostsWithRole, loadClusterSpec, portNeedsByHost } from "./components/config";
import { ControlPlane } from "./components/controlplane";
import { apiServerUrl, ClusterPki, issueCertificate } from "./components/pki";
import { Hosts } from "./components/remote";
import { WorkerPool } from "./components/workers";

const { spec, sshPrivateKey } = loadClusterSpec();
const lb = spec.loadBalancer;

const pki = new ClusterPki("pki", { clusterName: spec.clusterName, algorithm: spec.kubernetes.encryptionAlgorithm });
const hosts = new Hosts("hosts", {
  hosts: spec.hosts,
  sshPrivateKey,
  ports: portNeedsByHost(spec),
  certificateStarts: pki.caValidityStarts,
});

const controlPlaneHosts = hostsWithRole(spec, "controlplane");
const workerHosts = hostsWithRole(spec, "worker").filter((h) => !h.roles.includes("controlplane"));
const loadBalancerHosts = hostsWithRole(spec, "loadbalancer");
const etcdEndpoints = hostsWithRole(spec, "etcd").map((h) => `https://${h.internalAddress}:2379`);

// wired when EtcdCluster lands: the API server's etcd client certificate, the endpoints and the
// health gate come from EtcdCluster. Until then: the endpoints from the spec and a client
// certificate from the etcd CA (what kubeadm's apiserver-etcd-client would be).
const etcdClient = issueCertificate(
  "apiserver-etcd-client",
  { ca: pki.etcdCa, algorithm: pki.algorithm, commonName: "kube-apiserver-etcd-client", usages: ["client_auth"] },
  pki,
);
for (const h of controlPlaneHosts) hosts.certificateIssued(h, etcdClient.validityStartTime);

// Every host's chain starts with its preflight.
for (const h of spec.hosts) hosts.preflight(h);

const controlPlane = new ControlPlane("controlplane", {
  clusterName: spec.clusterName,
  hosts,
  controlPlanes: controlPlaneHosts,
  pki,
  kubernetes: spec.kubernetes,
  cni: spec.cni,
  etcd: {
    endpoints: etcdEndpoints,
    caCertPem: pki.etcdCa.certPem,
    clientCertPem: etcdClient.certPem,
    clientKeyPem: etcdClient.keyPem,
    ready: [], // wired when EtcdCluster lands: its health gate
  },
  loadBalancer: {
    vip: lb.vip,
    port: lb.port,
    addresses: [...new Set(loadBalancerHosts.flatMap((h) => [h.address, h.internalAddress]))],
    ready: [], // wired when LoadBalancerPair lands: the pair is serving the VIP
  },
});

if (workerHosts.length > 0) {
  new WorkerPool("workers", {
    hosts,
    workers: workerHosts,
    joinInfo: controlPlane.joinInfo,
    kubernetes: spec.kubernetes,
    controlPlane: controlPlane.firstHost,
    dependsOn: [controlPlane.initialized],
  });
}

const server = apiServerUrl(lb.vip, lb.port);
export const clusterName = spec.clusterName;
export const kubernetesVersion = spec.kubernetes.version;
export const vip = lb.vip;
export const apiServerEndpoint = server;
export const clusterCaCertificate = pki.kubernetesCa.certPem;
export { etcdEndpoints };
export const nodes = spec.hosts.map((h) => ({ name: h.name, internalAddress: h.internalAddress, roles: h.roles }));
export const kubeconfig: pulumi.Output<string> = controlPlane.kubeconfig;
export const joinInfo = controlPlane.joinInfo;
