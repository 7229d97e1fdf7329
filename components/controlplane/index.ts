/**
 * `ControlPlane` (hakube:k8s:ControlPlane): kubeadm control planes behind the load-balancer VIP,
 * with external etcd and this program's CAs placed before kubeadm runs.
 *
 * Per control-plane host: node preparation (system → packages → containerd), then one `kubeadm`
 * step — PKI files (keys on stdin), kubeadm configuration (on stdin: it holds the bootstrap token),
 * `kubeadm config validate`, then `kubeadm init` on the first host (once the etcd health gate and
 * the load balancers are ready) or `kubeadm join` on the others, one at a time. A `token` step on
 * the first control plane makes sure the bootstrap token is valid before each join. The CNI is
 * applied from the first control plane after init.
 *
 * Inputs are plain interfaces: no dependency on the EtcdCluster / LoadBalancerPair classes.
 */
import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { CniSpec, HostSpec, KubernetesSpec } from "../config/spec";
import type { ClusterPki } from "../pki";
import { apiServerUrl, joinEndpoint, renderKubeconfig } from "../pki";
import {
  asComment,
  ensureTokenStep,
  preflightErrorsToIgnore,
  prepareNode,
  REDACTED,
  renderControlPlaneJoinConfig,
  renderInitConfig,
  tokenTtlSeconds,
  type ClusterInput,
  type JoinInfo,
} from "../node";
import type { Hosts } from "../remote";
import {
  CP_STDIN,
  defaultManifestUrl,
  INIT_CONFIG_PATH,
  JOIN_CONFIG_PATH,
  renderCniScript,
  renderControlPlaneDeleteScript,
  renderControlPlaneScript,
} from "./render";

/** What the control planes need from the etcd cluster (EtcdCluster provides it; anything else may). */
export interface ControlPlaneEtcd {
  /** `https://<ip>:2379` client URLs, ≥ 1 (kubeadm's `etcd.external.endpoints`). */
  endpoints: pulumi.Input<string[]>;
  /** The etcd CA certificate (PEM): the API servers verify the members against it. */
  caCertPem: pulumi.Input<string>;
  /** The API server's etcd client certificate (PEM, signed by the etcd CA, clientAuth). */
  clientCertPem: pulumi.Input<string>;
  /** Its key (PEM, secret: installed from stdin with mode 0600). */
  clientKeyPem: pulumi.Input<string>;
  /** The etcd health gate: kubeadm init waits for these (may be empty for an etcd you run elsewhere). */
  ready: pulumi.Input<pulumi.Resource>[];
}

/** What the control planes need from the load-balancer pair. */
export interface ControlPlaneLoadBalancer {
  /** The API endpoint's IPv4 address (kubeadm `controlPlaneEndpoint` host, a certificate SAN). */
  vip: string;
  /** The API endpoint's TCP port (1–65535; 6443 unless the load balancers share hosts with control planes). */
  port: number;
  /** The load-balancer hosts' addresses and internal addresses (extra API server certificate SANs); may be empty. */
  addresses: string[];
  /** Ready when the VIP forwards to the control planes' port 6443: `kubeadm init` waits for these. */
  ready: pulumi.Input<pulumi.Resource>[];
}

/** The PKI parts the control planes use (a `ClusterPki` has them all). */
export type ControlPlanePki = Pick<
  ClusterPki,
  "kubernetesCa" | "frontProxyCa" | "serviceAccount" | "admin" | "bootstrapToken" | "caCertHash" | "algorithm"
>;

export interface ControlPlaneArgs {
  /** Cluster name (kubeadm `clusterName`, the kubeconfig's context). `^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`. */
  clusterName: string;
  /** Runs the steps (SSH access to every control plane). */
  hosts: Hosts;
  /**
   * The control planes, in config order: the first one runs `kubeadm init`, the others join one
   * at a time in this order. Required: ≥ 1 (3 recommended), each with role `controlplane`.
   * Reordering makes another host "first": keep the order stable.
   */
  controlPlanes: HostSpec[];
  /** The CAs, service-account key, admin certificate and bootstrap token (a `ClusterPki`). */
  pki: ControlPlanePki;
  /**
   * The `hakube:kubernetes` block as `parseClusterSpec` returns it: `version` (semver ≥ 1.31, default
   * 1.37.1), `podSubnet` (IPv4 CIDR, default 10.244.0.0/16, a /24 per node), `serviceSubnet`
   * (default 10.96.0.0/12, /12 at most), `dnsDomain` (default cluster.local), `packages`,
   * `aptRepository`, `encryptionAlgorithm`, `bootstrapTokenTtl` (Go duration, default `24h`,
   * `0` = never expires), `containerd`.
   */
  kubernetes: KubernetesSpec;
  /** The `hakube:cni` block: `plugin` `calico` | `flannel` | `cilium` | `none` (default calico), optional `manifestUrl` (required for cilium). */
  cni: CniSpec;
  /** The external etcd the API servers use: an `EtcdCluster`'s outputs, or an existing cluster's endpoints and client certificate. */
  etcd: ControlPlaneEtcd;
  /** The API endpoint in front of the control planes: a `LoadBalancerPair`'s, or any other TCP load balancer's VIP and port. */
  loadBalancer: ControlPlaneLoadBalancer;
}

export type { JoinInfo } from "../node";

export class ControlPlane extends pulumi.ComponentResource {
  /** Admin kubeconfig for `https://<vip>:<port>` (secret). */
  readonly kubeconfig: pulumi.Output<string>;
  /** `https://<vip>:<port>` */
  readonly endpoint: string;
  /** Everything a worker needs to join (secret): usable from another stack through a StackReference. */
  readonly joinInfo: pulumi.Output<JoinInfo>;
  /** The control plane that ran `kubeadm init`; it refreshes bootstrap tokens and drains removed workers. */
  readonly firstHost: HostSpec;
  /** The first control plane's kubeadm step: the cluster exists once it is done. */
  readonly initialized: command.remote.Command;
  /** Every control plane's kubeadm step, by host name. */
  readonly members: Record<string, command.remote.Command>;
  /** The CNI step (undefined with plugin "none"). */
  readonly network?: command.remote.Command;

  constructor(name: string, args: ControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hakube:k8s:ControlPlane", name, {}, opts);
    const { hosts, pki, kubernetes: k, loadBalancer: lb } = args;
    if (args.controlPlanes.length === 0) throw new Error("hakube: ControlPlane needs at least one host with role controlplane");
    const bad = args.controlPlanes.filter((h) => !h.roles.includes("controlplane"));
    if (bad.length) throw new Error(`hakube: ControlPlane: ${bad.map((h) => h.name).join(", ")} lack role controlplane`);

    const endpoint = joinEndpoint(lb.vip, lb.port);
    this.endpoint = apiServerUrl(lb.vip, lb.port);
    const first = args.controlPlanes[0];
    this.firstHost = first;
    const ttl = tokenTtlSeconds(k.bootstrapTokenTtl);
    const gates = [...args.etcd.ready, ...lb.ready];

    const files = pulumi
      .all([pki.kubernetesCa.certPem, pki.frontProxyCa.certPem, pki.serviceAccount.publicKeyPem, args.etcd.caCertPem, args.etcd.clientCertPem])
      .apply(([caCertPem, frontProxyCaCertPem, serviceAccountPublicKeyPem, etcdCaCertPem, etcdClientCertPem]) => ({
        caCertPem,
        frontProxyCaCertPem,
        serviceAccountPublicKeyPem,
        etcdCaCertPem,
        etcdClientCertPem,
      }));
    const cluster = pulumi.output(args.etcd.endpoints).apply(
      (etcdEndpoints): ClusterInput => ({
        clusterName: args.clusterName,
        kubernetesVersion: k.version,
        controlPlaneEndpoint: endpoint,
        podSubnet: k.podSubnet,
        serviceSubnet: k.serviceSubnet,
        dnsDomain: k.dnsDomain,
        certSANs: [lb.vip, ...lb.addresses],
        etcdEndpoints: [...etcdEndpoints],
        encryptionAlgorithm: pki.algorithm,
        ...(k.imageRepository ? { imageRepository: k.imageRepository } : {}),
        allowCgroupV1: k.allowCgroupV1,
        ...(k.kubeletConfiguration ? { kubeletConfiguration: k.kubeletConfiguration } : {}),
        ...(k.kubeProxyConfiguration ? { kubeProxyConfiguration: k.kubeProxyConfiguration } : {}),
      }),
    );
    const discoveryOf = (token: string, caCertHash: string) => ({ endpoint, token, caCertHash });
    const nodeOptions = { ignorePreflightErrors: preflightErrorsToIgnore(k) };

    const members: Record<string, command.remote.Command> = {};
    let previous: command.remote.Command | undefined;
    for (const host of args.controlPlanes) {
      const isFirst = host === first;
      const prepared = prepareNode(hosts, this, name, host, k);
      // the bootstrap token: valid before this host joins (for the first host: right after init, see below)
      const token = isFirst ? undefined : ensureTokenStep(hosts, this, name, { joiner: host, controlPlane: first, token: pki.bootstrapToken, ttl: k.bootstrapTokenTtl, dependsOn: [previous!] });
      const joinConfig = pulumi.all([pki.bootstrapToken, pki.caCertHash]).apply(([t, h]) => renderControlPlaneJoinConfig(host, discoveryOf(t, h), nodeOptions));
      const initConfig = isFirst ? pulumi.all([cluster, pki.bootstrapToken]).apply(([c, t]) => renderInitConfig(host, c, t, ttl)) : undefined;
      const script = pulumi.all([files, cluster, pki.caCertHash]).apply(([f, c, hash]) =>
        renderControlPlaneScript({
          host: host.name,
          internalAddress: host.internalAddress,
          first: isFirst,
          endpoint,
          files: f,
          preview: {
            ...(isFirst ? { init: asComment(`${INIT_CONFIG_PATH} (on stdin; token redacted)`, renderInitConfig(host, c, REDACTED, ttl)) } : {}),
            join: asComment(`${JOIN_CONFIG_PATH} (on stdin; token redacted)`, renderControlPlaneJoinConfig(host, discoveryOf(REDACTED, hash), nodeOptions)),
          },
        }),
      );
      const secrets: pulumi.Input<string>[] = [];
      secrets[CP_STDIN.joinConfig] = joinConfig;
      secrets[CP_STDIN.token] = pki.bootstrapToken;
      secrets[CP_STDIN.caKey] = pki.kubernetesCa.keyPem;
      secrets[CP_STDIN.frontProxyCaKey] = pki.frontProxyCa.keyPem;
      secrets[CP_STDIN.saKey] = pki.serviceAccount.privateKeyPem;
      secrets[CP_STDIN.etcdClientKey] = args.etcd.clientKeyPem;
      if (initConfig) secrets[CP_STDIN.initConfig] = initConfig;
      const step = hosts.step(this, name, {
        host,
        step: "kubeadm",
        script,
        secrets,
        deleteScript: renderControlPlaneDeleteScript({ host: host.name }),
        // init: after the etcd health gate and the load balancers; joins: one at a time, after the one before
        dependsOn: [prepared, ...gates, ...(previous ? [previous] : []), ...(token ? [token] : [])],
      });
      members[host.name] = step;
      previous = step;
    }
    this.members = members;
    this.initialized = members[first.name];
    // the first control plane's own token step: after init, and the handle to refresh the token on demand
    ensureTokenStep(hosts, this, name, { joiner: first, controlPlane: first, token: pki.bootstrapToken, ttl: k.bootstrapTokenTtl, dependsOn: [this.initialized] });

    if (args.cni.plugin !== "none") {
      const url = args.cni.manifestUrl ?? defaultManifestUrl(args.cni.plugin);
      if (!url) throw new Error(`hakube: cni plugin ${args.cni.plugin} needs cni.manifestUrl`);
      this.network = hosts.step(this, name, {
        host: first,
        step: "cni",
        script: renderCniScript({ host: first.name, plugin: args.cni.plugin, manifestUrl: url, podSubnet: k.podSubnet, images: args.cni.images, patches: args.cni.patches }),
        dependsOn: [this.initialized],
      });
    }

    this.kubeconfig = pulumi.secret(
      pulumi
        .all([pki.kubernetesCa.certPem, pki.admin.certPem, pki.admin.keyPem])
        .apply(([caCertPem, clientCertPem, clientKeyPem]) =>
          renderKubeconfig({ clusterName: args.clusterName, server: this.endpoint, caCertPem, clientCertPem, clientKeyPem }),
        ),
    );
    this.joinInfo = pulumi.secret(
      pulumi.all([pki.bootstrapToken, pki.caCertHash]).apply(([token, caCertHash]) => ({ endpoint, token, caCertHash })),
    );
    this.registerOutputs({ endpoint: this.endpoint, kubeconfig: this.kubeconfig, joinInfo: this.joinInfo });
  }
}
