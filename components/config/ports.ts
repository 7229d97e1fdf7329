/** The ports each host's roles listen on, for the preflight. Pure. */
import type { PortNeed } from "../remote/preflight";
import { APISERVER_PORT, ETCD_METRICS_PORT, LB_HEALTH_PORT } from "./defaults";
import type { ClusterSpec, EtcdSpec, HostSpec, LoadBalancerSpec } from "./spec";

export function portNeeds(host: HostSpec, lb?: LoadBalancerSpec, etcd?: Pick<EtcdSpec, "deployment">): PortNeed[] {
  const needs: PortNeed[] = [];
  const r = (role: string) => host.roles.includes(role as HostSpec["roles"][number]);
  if (r("loadbalancer") && lb) {
    // either engine may hold them on a re-run (the proxy step stops the other one on an engine switch)
    const owners = ["haproxy", "nginx"];
    needs.push({ port: lb.port, what: "load balancer frontend", owners });
    if (lb.ingress?.http) needs.push({ port: lb.ingress.http.port, what: "ingress http", owners });
    if (lb.ingress?.https) needs.push({ port: lb.ingress.https.port, what: "ingress https", owners });
    needs.push({ port: LB_HEALTH_PORT, what: "load balancer health endpoint (127.0.0.1)", owners });
  }
  if (r("etcd")) {
    needs.push({ port: 2379, what: "etcd client", owners: ["etcd"] });
    needs.push({ port: 2380, what: "etcd peer", owners: ["etcd"] });
    if (etcd?.deployment === "kubeadm") {
      // kubeadm's etcd serves its metrics and probes on 127.0.0.1:2381; the standalone kubelet its API and healthz
      needs.push({ port: ETCD_METRICS_PORT, what: "etcd metrics and probes (127.0.0.1)", owners: ["etcd"] });
      if (!r("controlplane") && !r("worker")) {
        needs.push({ port: 10250, what: "kubelet (127.0.0.1)", owners: ["kubelet"] });
        needs.push({ port: 10248, what: "kubelet healthz (127.0.0.1)", owners: ["kubelet"] });
      }
    }
  }
  if (r("controlplane")) {
    needs.push({ port: APISERVER_PORT, what: "kube-apiserver", owners: ["kube-apiserver"] });
    needs.push({ port: 10257, what: "kube-controller-manager", owners: ["kube-controller"] });
    needs.push({ port: 10259, what: "kube-scheduler", owners: ["kube-scheduler"] });
  }
  if (r("controlplane") || r("worker")) {
    needs.push({ port: 10250, what: "kubelet", owners: ["kubelet"] });
    needs.push({ port: 10256, what: "kube-proxy", owners: ["kube-proxy"] });
  }
  return needs;
}

/** Port needs by host name. `loadBalancer` may be absent (a program that only adds worker nodes). */
export function portNeedsByHost(spec: Pick<ClusterSpec, "hosts"> & { loadBalancer?: LoadBalancerSpec; etcd?: Pick<EtcdSpec, "deployment"> }): Record<string, PortNeed[]> {
  return Object.fromEntries(spec.hosts.map((h) => [h.name, portNeeds(h, spec.loadBalancer, spec.etcd)]));
}
