// A scratch Pulumi program that consumes the packed hakube library (test/library.test.ts copies
// it into a temp dir next to the unpacked tarball): a LoadBalancerPair alone, in front of an
// existing set of API servers, with hosts validated by the library's own parser.
import * as pulumi from "@pulumi/pulumi";
import { Hosts, LoadBalancerPair, parseNodePoolConfig, portNeedsByHost, type LoadBalancerSpec } from "hakube/components";

const { hosts } = parseNodePoolConfig({
  namespace: "scratch",
  roles: ["loadbalancer", "controlplane"],
  hosts: [
    { name: "edge1", address: "192.0.2.11", roles: ["loadbalancer"] },
    { name: "edge2", address: "192.0.2.12", roles: ["loadbalancer"] },
    { name: "api1", address: "192.0.2.21", roles: ["controlplane"] },
    { name: "api2", address: "192.0.2.22", roles: ["controlplane"] },
  ],
});
const lbs = hosts.filter((h) => h.roles.includes("loadbalancer"));
const apis = hosts.filter((h) => h.roles.includes("controlplane"));
const loadBalancer: LoadBalancerSpec = { engine: "haproxy", vip: "192.0.2.100", vipPrefix: 24, interface: "ens18", virtualRouterId: 77, port: 6443 };

const remote = new Hosts("edge", { hosts: lbs, sshPrivateKey: pulumi.secret("SCRATCH-SSH-KEY"), ports: portNeedsByHost({ hosts: lbs, loadBalancer }) });
const pair = new LoadBalancerPair("api-lb", {
  clusterName: "scratch",
  loadBalancer,
  hosts: lbs,
  controlPlanes: apis,
  workers: [],
  kubernetesCaCertPem: "-----BEGIN CERTIFICATE-----\nU0NSQVRDSC1DQQ==\n-----END CERTIFICATE-----\n",
  remote,
});

export const endpoint = pair.endpoint;
export const lbHosts = pair.hostNames;
