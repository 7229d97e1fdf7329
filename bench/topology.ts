/**
 * Generated stack configurations for the benchmarks and the blast-radius tests. Pure: no Pulumi
 * import. The same `n` always gives the same configuration.
 *
 * Role mix (a realistic HA cluster):
 * - `n < 10`: every host is an etcd member and a control plane that also runs workloads
 *   (roles controlplane+etcd+worker); the first two also hold the VIP (load balancer on the
 *   same host, so the frontend port is 8443). No separate workers.
 * - `n >= 10`: 2 load balancers; 3 etcd members and 3 control planes (5 and 5 from 100 hosts);
 *   the rest are workers. Every worker carries a zone label (a/b/c round robin); every 10th
 *   worker is a GPU worker (pool label and a NoSchedule taint); every 7th is addressed by DNS
 *   name with its own internalAddress.
 * - Ingress frontends (http/https to every worker's nodePort) are on, so adding a worker touches
 *   the load balancers' ingress backends (the one legitimate cross-host effect).
 * - Addresses in 10.200.0.0/16, the load balancers and the VIP (10.200.0.254) in 10.200.0.0/24;
 *   the pod subnet is the smallest one (≤ /16) with a /24 per Kubernetes node, at 10.64.0.0.
 */
import { TEST_SSH_KEY, type StackConfig } from "../test/harness/program";

export interface BenchHost {
  name: string;
  address: string;
  internalAddress?: string;
  roles: string[];
  labels?: Record<string, string>;
  taints?: string[];
}

export const SIZES = [3, 30, 100, 300] as const;
export const VIP = "10.200.0.254";

/** The i-th address of the plan (never the VIP, never .0/.1/.255). */
export function hostAddress(i: number): string {
  return `10.200.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}

/** Roles by position for a cluster of `n` hosts. */
export function rolePlan(n: number): { lbs: number; etcd: number; cps: number; workers: number; shared: boolean } {
  if (n < 1) throw new Error("benchTopology: at least one host");
  if (n < 10) return { lbs: Math.min(2, n), etcd: n % 2 === 1 ? n : n - 1, cps: n, workers: 0, shared: true };
  const big = n >= 100;
  const etcd = big ? 5 : 3;
  const cps = big ? 5 : 3;
  return { lbs: 2, etcd, cps, workers: n - 2 - etcd - cps, shared: false };
}

export function workerHost(k: number, i: number): BenchHost {
  const zone = ["a", "b", "c"][(k - 1) % 3];
  const gpu = k % 10 === 0;
  const dns = k % 7 === 0;
  const address = hostAddress(i);
  return {
    name: `worker${k}`,
    ...(dns ? { address: `worker${k}.nodes.example.net`, internalAddress: address } : { address }),
    roles: ["worker"],
    labels: { "topology.kubernetes.io/zone": zone, ...(gpu ? { "node.kubernetes.io/pool": "gpu" } : {}) },
    ...(gpu ? { taints: ["nvidia.com/gpu=true:NoSchedule"] } : {}),
  };
}

export function benchHosts(n: number): BenchHost[] {
  const p = rolePlan(n);
  if (p.shared) {
    return Array.from({ length: n }, (_, i) => ({
      name: `node${i + 1}`,
      address: hostAddress(i),
      roles: [...(i < p.lbs ? ["loadbalancer"] : []), ...(i < p.etcd ? ["etcd"] : []), "controlplane", "worker"],
      labels: { "topology.kubernetes.io/zone": ["a", "b", "c"][i % 3] },
    }));
  }
  const hosts: BenchHost[] = [];
  let i = 0;
  for (let k = 1; k <= p.lbs; k++) hosts.push({ name: `lb${k}`, address: hostAddress(i++), roles: ["loadbalancer"] });
  for (let k = 1; k <= p.etcd; k++) hosts.push({ name: `etcd${k}`, address: hostAddress(i++), roles: ["etcd"] });
  for (let k = 1; k <= p.cps; k++) hosts.push({ name: `cp${k}`, address: hostAddress(i++), roles: ["controlplane"] });
  for (let k = 1; k <= p.workers; k++) hosts.push(workerHost(k, i++));
  return hosts;
}

/** The smallest pod subnet (at most /16) with one /24 per Kubernetes node. */
export function podSubnetFor(nodes: number): string {
  let prefix = 16;
  while (2 ** (24 - prefix) < nodes) prefix--;
  return `10.64.0.0/${prefix}`;
}

/** A valid stack config of `n` hosts (keys with the `hakube:` namespace, as the CLI passes them). */
export function benchTopology(n: number): StackConfig {
  const hosts = benchHosts(n);
  const nodes = hosts.filter((h) => h.roles.includes("controlplane") || h.roles.includes("worker")).length;
  const shared = rolePlan(n).shared;
  return {
    "hakube:sshPrivateKey": TEST_SSH_KEY,
    "hakube:clusterName": `bench${n}`,
    "hakube:hosts": hosts,
    "hakube:loadBalancer": {
      engine: "haproxy",
      vip: VIP,
      vipPrefix: 24,
      interface: "eth0",
      virtualRouterId: 51,
      port: shared ? 8443 : 6443,
      ingress: { http: { port: 80, nodePort: 30080 }, https: { port: 443, nodePort: 30443 } },
    },
    "hakube:etcd": { version: "3.6.16" },
    "hakube:kubernetes": { version: "1.37.1", podSubnet: podSubnetFor(nodes), serviceSubnet: "10.96.0.0/12" },
    "hakube:cni": { plugin: "calico" },
  };
}
