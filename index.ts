// hakube: a highly available Kubernetes cluster on your own hosts, over SSH.
// Reads the stack config, builds the components, exports the outputs (README "Outputs").
import * as pulumi from "@pulumi/pulumi";
import { hostsWithRole, loadClusterSpec, portNeedsByHost } from "./components/config";
import { EtcdCluster } from "./components/etcd";
import { LoadBalancerPair } from "./components/loadbalancer";
import { ClusterPki, joinEndpoint, renderKubeconfig } from "./components/pki";
import { Hosts } from "./components/remote";

const { spec, sshPrivateKey } = loadClusterSpec();
const lb = spec.loadBalancer;

const pki = new ClusterPki("pki", { clusterName: spec.clusterName, algorithm: spec.kubernetes.encryptionAlgorithm });
const hosts = new Hosts("hosts", {
  hosts: spec.hosts,
  sshPrivateKey,
  ports: portNeedsByHost(spec),
  certificateStarts: pki.caValidityStarts,
});

// Components that issue host certificates come before the first step on those hosts.
const etcd = new EtcdCluster("etcd", {
  hosts,
  members: hostsWithRole(spec, "etcd"),
  ca: pki.etcdCa,
  algorithm: pki.algorithm,
  etcd: spec.etcd,
  clusterName: spec.clusterName,
});

// Every host's chain starts with its preflight.
for (const h of spec.hosts) hosts.preflight(h);

// The VIP in front of the API servers; `loadBalancers.ready` gates kubeadm init.
const loadBalancers = new LoadBalancerPair("lb", {
  clusterName: spec.clusterName,
  loadBalancer: lb,
  hosts: hostsWithRole(spec, "loadbalancer"),
  controlPlanes: hostsWithRole(spec, "controlplane"),
  workers: hostsWithRole(spec, "worker"),
  kubernetesCaCertPem: pki.kubernetesCa.certPem,
  remote: hosts,
});

const server = loadBalancers.endpoint;
export const clusterName = spec.clusterName;
export const kubernetesVersion = spec.kubernetes.version;
export const vip = loadBalancers.vip;
export const apiServerEndpoint = loadBalancers.endpoint;
export const clusterCaCertificate = pki.kubernetesCa.certPem;
export const etcdEndpoints = etcd.endpoints;
export const nodes = spec.hosts.map((h) => ({ name: h.name, internalAddress: h.internalAddress, roles: h.roles }));
export const kubeconfig = pulumi.secret(
  pulumi
    .all([pki.kubernetesCa.certPem, pki.admin.certPem, pki.admin.keyPem])
    .apply(([caCertPem, clientCertPem, clientKeyPem]) =>
      renderKubeconfig({ clusterName: spec.clusterName, server, caCertPem, clientCertPem, clientKeyPem }),
    ),
);
export const joinInfo = pulumi.secret({
  endpoint: joinEndpoint(lb.vip, lb.port),
  token: pki.bootstrapToken,
  caCertHash: pki.caCertHash,
});
