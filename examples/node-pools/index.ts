// A hakube cluster composed from the library differently from the main program (index.ts):
// the workers are split into several WorkerPools, each with its own pool-wide labels and
// taints (e.g. a tainted GPU pool), and only the general pool is an ingress backend of the
// load balancers (tainted nodes do not run the ingress controller).
//
// The cluster is described by the same `hakube:*` stack configuration as the main program;
// `pools:pools` assigns workers to pools. Workers in no pool form the pool "general".
import * as pulumi from "@pulumi/pulumi";
import {
  ClusterPki,
  ConfigError,
  ControlPlane,
  EtcdCluster,
  Hosts,
  hostsWithRole,
  isKubeletSettableLabel,
  labelKeyProblem,
  LoadBalancerPair,
  loadClusterSpec,
  parseTaint,
  portNeedsByHost,
  WorkerPool,
  type HostSpec,
  type Taint,
} from "../../components";

interface PoolConfig {
  hosts: string[];
  labels?: Record<string, string>;
  taints?: string[];
}

/** Validate `pools:pools` against the cluster's workers; every problem named by key path. */
export function parsePools(raw: unknown, workers: HostSpec[]): Map<string, { hosts: HostSpec[]; labels: Record<string, string>; taints: Taint[] }> {
  const problems: string[] = [];
  const at = (p: string, m: string) => problems.push(`pools:pools${p}: ${m}`);
  const pools = new Map<string, { hosts: HostSpec[]; labels: Record<string, string>; taints: Taint[] }>();
  const owner = new Map<string, string>();
  if (raw !== undefined && (typeof raw !== "object" || raw === null || Array.isArray(raw))) at("", "expected an object { <pool>: { hosts, labels?, taints? } }");
  for (const [name, v] of Object.entries((raw ?? {}) as Record<string, PoolConfig>)) {
    const base = `.${name}`;
    if (!/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/.test(name) || name === "general") at(base, `pool name ${JSON.stringify(name)} must be a short lower-case label other than "general"`);
    const pool = { hosts: [] as HostSpec[], labels: {} as Record<string, string>, taints: [] as Taint[] };
    for (const k of Object.keys(v ?? {})) if (!["hosts", "labels", "taints"].includes(k)) at(`${base}.${k}`, "unknown key (hosts, labels, taints)");
    if (!Array.isArray(v?.hosts) || v.hosts.length === 0) at(`${base}.hosts`, "is required: a non-empty list of worker host names");
    (v?.hosts ?? []).forEach((h, i) => {
      const host = workers.find((w) => w.name === h);
      if (!host) at(`${base}.hosts[${i}]`, `${JSON.stringify(h)} is not a worker in hakube:hosts`);
      else if (owner.has(h)) at(`${base}.hosts[${i}]`, `${JSON.stringify(h)} is already in pool ${owner.get(h)}`);
      else (owner.set(h, name), pool.hosts.push(host));
    });
    for (const [k, val] of Object.entries(v?.labels ?? {})) {
      const p = labelKeyProblem(k) ?? (isKubeletSettableLabel(k) ? undefined : "the kubelet may not set this label");
      if (p) at(`${base}.labels[${JSON.stringify(k)}]`, p);
      else pool.labels[k] = String(val);
    }
    (v?.taints ?? []).forEach((t, i) => {
      const parsed = parseTaint(t);
      if (typeof parsed === "string") at(`${base}.taints[${i}]`, parsed);
      else pool.taints.push(parsed);
    });
    pools.set(name, pool);
  }
  if (problems.length) throw new ConfigError(problems);
  const general = workers.filter((w) => !owner.has(w.name));
  if (general.length) pools.set("general", { hosts: general, labels: {}, taints: [] });
  return pools;
}

const { spec, sshPrivateKey } = loadClusterSpec();
const role = (r: Parameters<typeof hostsWithRole>[1]) => hostsWithRole(spec, r);
const controlPlanes = role("controlplane");
const workers = role("worker").filter((h) => !h.roles.includes("controlplane"));
let pools: ReturnType<typeof parsePools>;
try {
  pools = parsePools(new pulumi.Config("pools").getObject("pools"), workers);
} catch (e) {
  if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
  throw e;
}
// pool-wide labels and taints join each host's own (the host's win on a clash)
const withPool = (h: HostSpec, p: { labels: Record<string, string>; taints: Taint[] }): HostSpec => ({
  ...h,
  labels: { ...p.labels, ...h.labels },
  taints: [...p.taints.filter((t) => !h.taints.some((x) => x.key === t.key && x.effect === t.effect)), ...h.taints],
});

const pki = new ClusterPki("pki", { clusterName: spec.clusterName, algorithm: spec.kubernetes.encryptionAlgorithm });
const hosts = new Hosts("hosts", { hosts: spec.hosts, sshPrivateKey, ports: portNeedsByHost(spec), certificateStarts: pki.caValidityStarts });
const etcd = new EtcdCluster("etcd", { hosts, members: role("etcd"), ca: pki.etcdCa, algorithm: pki.algorithm, etcd: spec.etcd, clusterName: spec.clusterName });
for (const h of controlPlanes) hosts.certificateIssued(h, etcd.apiserverClient.validityStartTime);
for (const h of spec.hosts) hosts.preflight(h);

const lb = new LoadBalancerPair("lb", {
  clusterName: spec.clusterName,
  loadBalancer: spec.loadBalancer,
  hosts: role("loadbalancer"),
  controlPlanes,
  // ingress backends: the general pool only
  workers: pools.get("general")?.hosts ?? [],
  kubernetesCaCertPem: pki.kubernetesCa.certPem,
  remote: hosts,
});

const controlPlane = new ControlPlane("controlplane", {
  clusterName: spec.clusterName,
  hosts,
  controlPlanes,
  pki,
  kubernetes: spec.kubernetes,
  cni: spec.cni,
  etcd: { endpoints: etcd.endpoints, caCertPem: etcd.caCertPem, clientCertPem: etcd.apiserverClientCertPem, clientKeyPem: etcd.apiserverClientKeyPem, ready: [etcd.healthGate] },
  loadBalancer: { vip: lb.vip, port: lb.port, addresses: [...new Set(role("loadbalancer").flatMap((h) => [h.address, h.internalAddress]))], ready: lb.ready },
});

const poolNodes: Record<string, string[]> = {};
for (const [name, p] of pools) {
  const pool = new WorkerPool(`pool-${name}`, {
    hosts,
    workers: p.hosts.map((h) => withPool(h, p)),
    joinInfo: controlPlane.joinInfo,
    kubernetes: spec.kubernetes,
    controlPlane: controlPlane.firstHost,
    dependsOn: [controlPlane.initialized],
  });
  poolNodes[name] = pool.nodeNames;
}

export const apiServerEndpoint = lb.endpoint;
export const kubeconfig = controlPlane.kubeconfig;
export const joinInfo = controlPlane.joinInfo;
export const nodePools = poolNodes;
