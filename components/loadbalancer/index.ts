/**
 * `LoadBalancerPair` (hakube:lb:LoadBalancerPair): HAProxy or Nginx plus Keepalived on the
 * hosts with role `loadbalancer`, holding the cluster's VIP in front of the API servers (and,
 * optionally, the workers' ingress nodePorts). Wiring only; every file and script comes from
 * `render.ts`. Design and numbers: docs/loadbalancer.md.
 *
 * Per load-balancer host, after its preflight:
 *   `${name}-packages-${host}`   engine + keepalived from the distribution, keepalived's script user
 *   `${name}-proxy-${host}`      CA file, engine config (validated, swapped atomically), reload on change, health probe
 *   `${name}-keepalived-${host}` check script, keepalived.conf (validated), reload on change, VIP answers
 */
import * as pulumi from "@pulumi/pulumi";
import { APISERVER_PORT } from "../config/defaults";
import type { HostSpec, LoadBalancerSpec } from "../config/spec";
import { apiServerUrl } from "../pki/render";
import type { Hosts } from "../remote";
import {
  renderKeepalivedDeleteStep,
  renderKeepalivedStep,
  renderPackagesStep,
  renderProxyDeleteStep,
  renderProxyStep,
  resolve,
  type Resolved,
  type VrrpMode,
} from "./render";

export { LB_HEALTH_PORT } from "./render";

export interface LoadBalancerPairArgs {
  /** Cluster name (config comments, keepalived's instance names). `^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`. */
  clusterName: string;
  /**
   * The `hakube:loadBalancer` block as `parseClusterSpec` returns it (defaults applied):
   * `engine` `haproxy` | `nginx` (default `haproxy`); `vip` (IPv4, required, a free address inside
   * every load balancer's `<internalAddress>/<vipPrefix>`); `vipPrefix` (bits, 1–32, default 24);
   * `interface` (the NIC keepalived binds, default `eth0`); `virtualRouterId` (1–255, default 51,
   * unique per L2 segment); `port` (TCP port of the API frontend on the VIP, 1–65535, default 6443;
   * ≠ 6443 when a load balancer is also a control plane); optional `ingress` (`http`/`https`:
   * `{ port, nodePort }`, nodePort 30000–32767, needs `workers`).
   */
  loadBalancer: LoadBalancerSpec;
  /** The load balancers, in host order: the order decides the VRRP priorities (200, 190, …). Required: ≥ 1 (2 for a standby). */
  hosts: HostSpec[];
  /** The API server backends (`internalAddress:6443` each), in host order. May be empty (every backend then stays down). */
  controlPlanes: HostSpec[];
  /** The ingress backends (`internalAddress:nodePort` each); only used with `loadBalancer.ingress`. */
  workers: HostSpec[];
  /** The Kubernetes CA certificate (PEM, public): HAProxy verifies every API server's certificate against it. A new CA re-runs the proxy steps. */
  kubernetesCaCertPem: pulumi.Input<string>;
  /** Where the steps run (SSH access to every load balancer). */
  remote: Hosts;
  /** VRRP transport: `unicast` (default: many VM networks drop multicast; peers are the other hosts' internalAddresses) or `multicast`. */
  vrrp?: VrrpMode;
}

export class LoadBalancerPair extends pulumi.ComponentResource {
  /** The virtual IP. */
  readonly vip: string;
  /** The API frontend port on the VIP. */
  readonly port: number;
  /** `https://<vip>:<port>` */
  readonly endpoint: string;
  /** The load-balancer host names, in host order. */
  readonly hostNames: string[];
  /**
   * Depend on these to run after the pair is serving: every host's engine answers its health
   * probe and the VIP accepts connections on the API port (the keepalived step of each host).
   */
  readonly ready: pulumi.Resource[];
  /** The validated, defaulted render input (for tests and docs). */
  readonly resolved: Resolved;

  constructor(name: string, args: LoadBalancerPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hakube:lb:LoadBalancerPair", name, {}, opts);
    const lb = args.loadBalancer;
    const r = resolve({
      clusterName: args.clusterName,
      engine: lb.engine,
      vip: lb.vip,
      vipPrefix: lb.vipPrefix,
      interface: lb.interface,
      virtualRouterId: lb.virtualRouterId,
      port: lb.port,
      ...(lb.ingress ? { ingress: lb.ingress } : {}),
      lbHosts: args.hosts.map((h) => ({ name: h.name, internalAddress: h.internalAddress })),
      apiServers: args.controlPlanes.map((h) => ({ name: h.name, address: h.internalAddress, port: APISERVER_PORT })),
      workers: lb.ingress ? args.workers.map((h) => ({ name: h.name, address: h.internalAddress })) : [],
      vrrp: args.vrrp ?? "unicast",
    });
    this.resolved = r;
    this.vip = r.vip;
    this.port = r.port;
    this.endpoint = apiServerUrl(r.vip, r.port);
    this.hostNames = r.lbHosts.map((h) => h.name);

    const caCertPem = pulumi.output(args.kubernetesCaCertPem);
    const ready: pulumi.Resource[] = [];
    for (const host of args.hosts) {
      const packages = args.remote.step(this, name, { host, step: "packages", script: renderPackagesStep(r) });
      const proxy = args.remote.step(this, name, {
        host,
        step: "proxy",
        // data flow: the script carries the CA certificate, so a new CA re-runs it (and reloads)
        script: caCertPem.apply((ca) => renderProxyStep(r, ca)),
        deleteScript: renderProxyDeleteStep(r),
        dependsOn: [packages],
      });
      const keepalived = args.remote.step(this, name, {
        host,
        step: "keepalived",
        script: renderKeepalivedStep(r, host.name),
        deleteScript: renderKeepalivedDeleteStep(r),
        // keepalived's check probes the engine: configure it once the engine serves
        dependsOn: [proxy],
      });
      ready.push(keepalived);
    }
    this.ready = ready;

    this.registerOutputs({ vip: this.vip, endpoint: this.endpoint, hostNames: this.hostNames });
  }
}
