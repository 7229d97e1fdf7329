/**
 * Blast radius: single-knob changes of a stack and what each may touch. Pure: no Pulumi import.
 *
 * A change may touch only the resources it names below; nothing else's inputs may differ (no
 * certificate, key or token ever changes for these knobs). Adding a worker adds that worker's
 * own resources and changes only the load balancers' `proxy` steps, which list every worker as
 * an ingress backend (documented in docs/benchmarks.md); with ingress off it changes nothing.
 */
import type { StackConfig } from "../test/harness/program";
import { classify, type InputDiff, type ResourceKind } from "./measure";
import { workerHost, type BenchHost } from "./topology";

export interface Knob {
  id: string;
  /** what the change is, for the table */
  what: string;
  change(config: StackConfig): StackConfig;
  /** may a changed (or, for `add-worker`, added) resource have this kind */
  mayChange(r: ResourceKind, config: StackConfig): boolean;
  /** what the rule allows, for the table */
  allowed: string;
  /** resources may be added (only the new host's, and its pool component) */
  adds?: (r: ResourceKind, config: StackConfig) => boolean;
}

const hostsOf = (c: StackConfig) => c["hakube:hosts"] as BenchHost[];
const obj = (c: StackConfig, k: string) => (c[`hakube:${k}`] ?? {}) as Record<string, unknown>;
const isCommand = (r: ResourceKind) => r.type === "command";

const etcdHosts = (c: StackConfig) => hostsOf(c).filter((h) => h.roles.includes("etcd")).map((h) => h.name);

/** The host whose labels the `labels` knob changes: the second Kubernetes node that runs workloads. */
export function labelTarget(c: StackConfig): string {
  return hostsOf(c).filter((h) => h.roles.includes("worker"))[1]?.name ?? hostsOf(c).find((h) => h.roles.includes("worker"))!.name;
}

/** The worker the `add-worker` knob adds. */
export function addedWorker(c: StackConfig): BenchHost {
  const hosts = hostsOf(c);
  const k = hosts.filter((h) => /^worker\d+$/.test(h.name)).length + 1;
  return workerHost(k, hosts.length);
}

/** Node-preparation steps (names of today's and of merged steps). */
const NODE_PREP = /^(controlplane|workers)-(prepare|system|packages|containerd)$/;

export const KNOBS: Knob[] = [
  {
    id: "vrrp-id",
    what: "loadBalancer.virtualRouterId 51 → 52",
    change: (c) => ({ ...c, "hakube:loadBalancer": { ...obj(c, "loadBalancer"), virtualRouterId: 52 } }),
    mayChange: (r) => isCommand(r) && r.kind === "lb-keepalived",
    allowed: "each load balancer's keepalived step",
  },
  {
    id: "engine",
    what: "loadBalancer.engine haproxy → nginx",
    change: (c) => ({ ...c, "hakube:loadBalancer": { ...obj(c, "loadBalancer"), engine: "nginx" } }),
    mayChange: (r) => isCommand(r) && /^lb-(packages|proxy|keepalived)$/.test(r.kind),
    allowed: "the load balancers' packages, proxy and keepalived steps",
  },
  {
    id: "labels",
    what: "one worker's labels (zone → z)",
    change: (c) => {
      const target = labelTarget(c);
      return { ...c, "hakube:hosts": hostsOf(c).map((h) => (h.name === target ? { ...h, labels: { ...h.labels, "topology.kubernetes.io/zone": "z" } } : h)) };
    },
    mayChange: (r, c) => r.host === labelTarget(c) && isCommand(r),
    allowed: "that worker's own commands",
  },
  {
    id: "add-worker",
    what: "one worker added",
    change: (c) => ({ ...c, "hakube:hosts": [...hostsOf(c), addedWorker(c)] }),
    mayChange: (r) => isCommand(r) && r.kind === "lb-proxy",
    adds: (r, c) => r.host === hostsOf(c)[hostsOf(c).length - 1].name || r.type === "component",
    allowed: "adds the new worker's resources; changes only the load balancers' proxy steps (ingress backends list every worker)",
  },
  {
    id: "etcd-version",
    what: "etcd.version 3.6.16 → 3.6.17",
    change: (c) => ({ ...c, "hakube:etcd": { ...obj(c, "etcd"), version: "3.6.17" } }),
    mayChange: (r) => isCommand(r) && /^etcd-(install|member|health)$/.test(r.kind),
    allowed: "the etcd install, member and health steps",
  },
  {
    id: "etcd-deployment",
    what: "etcd.deployment systemd → kubeadm",
    change: (c) => ({ ...c, "hakube:etcd": { ...obj(c, "etcd"), deployment: "kubeadm" } }),
    mayChange: (r, c) => isCommand(r) && (/^etcd-(install|member|health)$/.test(r.kind) || (r.kind === "hosts-preflight" && etcdHosts(c).includes(r.host ?? ""))),
    adds: (r, c) => isCommand(r) && r.kind === "etcd-prepare" && etcdHosts(c).includes(r.host ?? ""),
    allowed: "the etcd steps and the etcd hosts' preflights (kubelet ports); adds node preparation on the etcd hosts",
  },
  {
    id: "kubernetes-version",
    what: "kubernetes.version 1.37.1 → 1.37.2",
    change: (c) => ({ ...c, "hakube:kubernetes": { ...obj(c, "kubernetes"), version: "1.37.2" } }),
    mayChange: (r) => isCommand(r) && (NODE_PREP.test(r.kind) || r.kind === "controlplane-kubeadm" || r.kind === "workers-join"),
    allowed: "node preparation, kubeadm and join steps",
  },
  {
    id: "cni",
    what: "cni.plugin calico → flannel",
    change: (c) => ({ ...c, "hakube:cni": { ...obj(c, "cni"), plugin: "flannel" } }),
    mayChange: (r) => isCommand(r) && r.kind === "controlplane-cni",
    allowed: "the CNI step",
  },
];

export interface BlastResult {
  knob: string;
  changed: number;
  added: number;
  removed: number;
  /** resources the change touched that its rule does not allow (must be empty) */
  violations: string[];
}

/** Check one knob's input differences against what it may touch. */
export function checkBlast(knob: Knob, changedConfig: StackConfig, diff: InputDiff): BlastResult {
  const names = hostsOf(changedConfig).map((h) => h.name);
  const violations: string[] = [];
  for (const k of diff.changed) if (!knob.mayChange(classify(k, names), changedConfig)) violations.push(`changed ${k}`);
  for (const k of diff.added) if (!knob.adds?.(classify(k, names), changedConfig)) violations.push(`added ${k}`);
  for (const k of diff.removed) violations.push(`removed ${k}`);
  return { knob: knob.id, changed: diff.changed.length, added: diff.added.length, removed: diff.removed.length, violations };
}

