/**
 * hakube as a library: the components `index.ts` composes, for programs that compose them
 * differently (another topology, an existing etcd, several worker pools, a pool in its own
 * stack). `import { LoadBalancerPair, Hosts, parseClusterSpec } from "hakube";`
 *
 * Contract:
 * - Type tokens are `hakube:<module>:<Class>`; every child is named `${name}-${step}-${host}` and
 *   parented to its component, so two components of the same class need two names.
 * - Nothing here reads the stack config except `loadClusterSpec()` (namespace `hakube`); every
 *   other value arrives as an argument. `parseClusterSpec` / `parseNodePoolConfig` are pure and
 *   throw one `ConfigError` naming every problem.
 * - Hosts are `HostSpec`s (as the parsers return them); build them with the parsers rather than by
 *   hand, so names, addresses and labels are validated.
 * - Secrets (keys, tokens) are `pulumi.Output`s marked secret and travel to hosts on stdin only.
 *
 * Packaging: `npm pack` ships `dist/` (CommonJS + `.d.ts`, built by `npm run build:lib` from
 * `components/`), see README "Library".
 */

/* ---------------------------------------------------------------- configuration */
export {
  loadClusterSpec,
  parseClusterSpec,
  parseNodePoolConfig,
  hostsWithRole,
  portNeeds,
  portNeedsByHost,
  ConfigError,
  CONFIG_KEYS,
  NAMESPACE,
  ROLES,
  ARCHES,
  TAINT_EFFECTS,
  parseTaint,
  normalizeHostKey,
  isKubeletSettableLabel,
  labelKeyProblem,
  keyPath,
  type LoadedSpec,
  type ClusterSpec,
  type HostSpec,
  type LoadBalancerSpec,
  type IngressPortSpec,
  type EtcdSpec,
  type KubernetesSpec,
  type ContainerdSpec,
  type CniSpec,
  type Taint,
  type Role,
  type Arch,
  type EncryptionAlgorithm,
  type RawConfig,
  type SpecResult,
  type NodePoolConfigInput,
} from "./config";
export { DEFAULTS, DEFAULT_KUBERNETES_VERSION, DEFAULT_ETCD_VERSION, MIN_KUBERNETES_VERSION, MIN_EXTERNAL_ETCD_VERSION, APISERVER_PORT, LB_HEALTH_PORT } from "./config/defaults";

/* ---------------------------------------------------------------- components */
export { ClusterPki, issueCertificate, discoveryHash, renderKubeconfig, apiServerUrl, joinEndpoint, type ClusterPkiArgs, type CertPair, type LeafCertArgs } from "./pki";
export { Hosts, type HostsArgs, type StepArgs } from "./remote";
export type { PortNeed } from "./remote/preflight";
export { EtcdCluster, clientUrl, type EtcdClusterArgs } from "./etcd";
export { LoadBalancerPair, type LoadBalancerPairArgs } from "./loadbalancer";
export type { VrrpMode } from "./loadbalancer/render";
export { ControlPlane, type ControlPlaneArgs, type ControlPlaneEtcd, type ControlPlaneLoadBalancer, type ControlPlanePki } from "./controlplane";
export { WorkerPool, type WorkerPoolArgs } from "./workers";
export type { JoinInfo, NodeKubernetesSettings } from "./node";
