/**
 * `EtcdCluster` (hakube:etcd:EtcdCluster): the external etcd cluster the control planes use —
 * per-member certificates from the etcd CA, installation, configuration and a systemd unit on
 * every member host, rolling restarts when something changed, and a health gate. Wiring only:
 * the files and scripts come from `render.ts`. Design and host layout: docs/etcd.md.
 */
import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { EncryptionAlgorithm, EtcdSpec, HostSpec, KubernetesSpec } from "../config/spec";
import { prepareNode, type NodeSettings } from "../node";
import { issueCertificate, type CertPair } from "../pki";
import type { Hosts } from "../remote";
import {
  etcdImage,
  etcdImageTag,
  KUBEADM_PATHS,
  kubeadmMemberSettings,
  renderEtcdKubeletConfig,
  renderKubeadmEtcdConfig,
  renderKubeadmMemberDeleteScript,
  renderKubeadmMemberScript,
  renderKubeletDropIn,
} from "./kubeadm";
import {
  clientUrl,
  memberStamp,
  renderConfig,
  renderHealthGateScript,
  renderInstallScript,
  renderMemberDeleteScript,
  renderMemberScript,
  renderUnit,
  type EtcdMember,
} from "./render";

export { clientUrl, peerUrl, initialCluster, initialClusterToken, DEFAULT_PATHS, PKI_FILES } from "./render";
export { KUBEADM_PATHS } from "./kubeadm";

/** What `etcd.deployment: kubeadm` needs from `hakube:kubernetes`: node preparation, the image repository, the kubelet settings. */
export type EtcdKubernetesSettings = NodeSettings & Pick<KubernetesSpec, "kubeletConfiguration">;

export interface EtcdClusterArgs {
  /** Runs the steps (and each host's preflight). Required; its SSH key must reach every member. */
  hosts: Hosts;
  /**
   * The members, in host order (the first one runs the health gate). Required: 1, 3, 5 or 7
   * hosts (the cluster parser enforces the odd count; this class only refuses an empty list),
   * each with role `etcd`; they may have other roles too. Names and internalAddresses unique.
   * Changing the list of a bootstrapped cluster is refused by the member step (docs/etcd.md).
   */
  members: HostSpec[];
  /** The etcd CA (`ClusterPki.etcdCa`): signs every member and client certificate. Required; its key is secret. */
  ca: CertPair;
  /** Key algorithm of every certificate issued here: `ECDSA-P256` (what `hakube:kubernetes.encryptionAlgorithm` defaults to) or `RSA-2048`. */
  algorithm: EncryptionAlgorithm;
  /**
   * The `hakube:etcd` block as `parseClusterSpec` returns it (defaults applied): `version` (semver,
   * default 3.6.16), `source` (`download` | `apt` | `preinstalled`, default `download`),
   * `downloadUrl` (template with `{version}`/`{arch}`), optional `sha256` per arch, `dataDir`
   * (absolute path, default `/var/lib/etcd`; kept on destroy).
   */
  etcd: EtcdSpec;
  /** Cluster name: part of the initial-cluster token and the unit description. `^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`. Changing it on a bootstrapped cluster is refused. */
  clusterName: string;
  /**
   * `hakube:kubernetes` (defaults applied). Required with `etcd.deployment: kubeadm`: every member
   * host is prepared like a Kubernetes node (containerd, kubelet, kubeadm from the same sources),
   * the image comes from `imageRepository`, the standalone kubelet gets `allowCgroupV1` and
   * `kubeletConfiguration`. Unused with `systemd`.
   */
  kubernetes?: EtcdKubernetesSettings;
}

export class EtcdCluster extends pulumi.ComponentResource {
  /** `https://<internalAddress>:2379` of every member, in host order. */
  readonly endpoints: string[];
  /** The etcd CA certificate (trust anchor for etcd clients). */
  readonly caCertPem: pulumi.Output<string>;
  /** Client certificate for kube-apiserver (`apiserver-etcd-client`). */
  readonly apiserverClient: CertPair;
  readonly apiserverClientCertPem: pulumi.Output<string>;
  /** Secret. */
  readonly apiserverClientKeyPem: pulumi.Output<string>;
  /** Every member joined and healthy: control-plane work depends on it. */
  readonly healthGate: pulumi.Resource;
  /** The member step of each host (by host name), in host order. */
  readonly memberSteps: Record<string, command.remote.Command>;

  constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hakube:etcd:EtcdCluster", name, {}, opts);
    const { hosts, etcd, clusterName, algorithm } = args;
    if (args.members.length === 0) throw new Error("hakube: etcd: no host has role etcd");
    const members: EtcdMember[] = args.members.map((h) => ({ name: h.name, internalAddress: h.internalAddress }));

    // Cluster-wide client certificates.
    const healthcheck = issueCertificate(
      `${name}-healthcheck-client`,
      { ca: args.ca, algorithm, commonName: "kube-etcd-healthcheck-client", usages: ["client_auth"] },
      this,
    );
    this.apiserverClient = issueCertificate(
      `${name}-apiserver-etcd-client`,
      { ca: args.ca, algorithm, commonName: "kube-apiserver-etcd-client", usages: ["client_auth"] },
      this,
    );

    // Per-member server and peer certificates, recorded for the host's clock check before any step.
    const certs = new Map<string, { server: CertPair; peer: CertPair }>();
    for (const h of args.members) {
      const server = issueCertificate(
        `${name}-server-${h.name}`,
        {
          ca: args.ca,
          algorithm,
          commonName: h.name,
          dnsNames: [h.name, "localhost"],
          ipAddresses: [h.internalAddress, "127.0.0.1"],
          usages: ["server_auth", "client_auth"],
        },
        this,
      );
      const peer = issueCertificate(
        `${name}-peer-${h.name}`,
        {
          ca: args.ca,
          algorithm,
          commonName: h.name,
          dnsNames: [h.name],
          ipAddresses: [h.internalAddress],
          usages: ["server_auth", "client_auth"],
        },
        this,
      );
      certs.set(h.name, { server, peer });
      // etcd on this host verifies all of them (the client certificates too) against its clock.
      for (const c of [server, peer, healthcheck, this.apiserverClient]) hosts.certificateIssued(h, c.validityStartTime);
    }

    // Install (in parallel), then the member steps chained in host order: one restart at a time.
    const kubeadm = etcd.deployment === "kubeadm";
    const k = args.kubernetes;
    if (kubeadm && !k) throw new Error("hakube: etcd: deployment kubeadm needs the kubernetes settings (node preparation of the etcd hosts)");
    const installScript = renderInstallScript({ etcd });
    const tuning = { heartbeatIntervalMs: etcd.heartbeatIntervalMs, electionTimeoutMs: etcd.electionTimeoutMs };
    const imageTag = kubeadm ? etcdImageTag(etcd) : "";
    const kubeletConfig = kubeadm ? renderEtcdKubeletConfig(k!, clusterName) : "";
    const kubeletDropIn = kubeadm ? renderKubeletDropIn() : "";
    const stamps: pulumi.Output<string>[] = [];
    const memberSteps: Record<string, command.remote.Command> = {};
    let previous: command.remote.Command | undefined;
    for (const h of args.members) {
      const member = members.find((m) => m.name === h.name)!;
      const install = hosts.step(this, name, { host: h, step: "install", script: installScript });
      const prepare = kubeadm ? [prepareNode(hosts, this, name, h, k!)] : [];
      const { server, peer } = certs.get(h.name)!;
      const owner = `${name}-member-${h.name}`;
      const kubeadmInput = { member, members, clusterName, dataDir: etcd.dataDir, tuning, kubernetesVersion: k?.version ?? "", imageRepository: k?.imageRepository, imageTag };
      // what the member's process runs with: etcd.conf.yml + unit (systemd), or the static pod's image, data dir and flags (kubeadm; the kubelet's own files restart the kubelet, not etcd)
      const config = kubeadm ? kubeadmMemberSettings(kubeadmInput) : renderConfig({ member, members, clusterName, dataDir: etcd.dataDir, tuning });
      const unit = kubeadm ? "" : renderUnit({ member: h.name, address: h.internalAddress, clusterName, source: etcd.source, version: etcd.version });
      const rendered = pulumi
        .all([args.ca.certPem, server.certPem, peer.certPem, healthcheck.certPem])
        .apply(([caCertPem, serverCertPem, peerCertPem, healthcheckCertPem]) => {
          const stamp = memberStamp({ config, unit, caCertPem, serverCertPem, peerCertPem, healthcheckCertPem, source: etcd.source, version: etcd.version });
          const common = { member, members, clusterName, dataDir: etcd.dataDir, owner, caCertPem, serverCertPem, peerCertPem, healthcheckCertPem, stamp, version: etcd.version };
          const script = kubeadm
            ? renderKubeadmMemberScript({
                ...common,
                config,
                unit,
                kubeadmConfig: renderKubeadmEtcdConfig({ ...kubeadmInput, stamp }),
                kubeletConfig,
                kubeletDropIn,
                image: etcdImage(k!.imageRepository, imageTag),
              })
            : renderMemberScript({ ...common, config, unit });
          return { stamp, script };
        });
      stamps.push(rendered.stamp);
      const step = hosts.step(this, name, {
        host: h,
        step: "member",
        script: rendered.script,
        secrets: [server.keyPem, peer.keyPem, healthcheck.keyPem],
        deleteScript: kubeadm ? renderKubeadmMemberDeleteScript({ owner, dataDir: etcd.dataDir }) : renderMemberDeleteScript({ owner, dataDir: etcd.dataDir }),
        dependsOn: [install, ...prepare, ...(previous ? [previous] : [])],
      });
      memberSteps[h.name] = step;
      previous = step;
    }
    this.memberSteps = memberSteps;

    // The gate: on the first member (host order), after every member step.
    const gateHost = args.members[0];
    const gateScript = pulumi.all(stamps).apply((s) =>
      renderHealthGateScript({ members, clusterName, stamps: Object.fromEntries(members.map((m, i) => [m.name, s[i]])), paths: kubeadm ? KUBEADM_PATHS : undefined }),
    );
    this.healthGate = hosts.step(this, name, { host: gateHost, step: "health", script: gateScript, dependsOn: Object.values(memberSteps) });

    this.endpoints = members.map(clientUrl);
    this.caCertPem = args.ca.certPem;
    this.apiserverClientCertPem = this.apiserverClient.certPem;
    this.apiserverClientKeyPem = pulumi.secret(this.apiserverClient.keyPem);

    this.registerOutputs({
      endpoints: this.endpoints,
      caCertPem: this.caCertPem,
      apiserverClientCertPem: this.apiserverClientCertPem,
      apiserverClientKeyPem: this.apiserverClientKeyPem,
    });
  }
}
