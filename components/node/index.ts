/**
 * Node preparation and the bootstrap-token step, shared by `ControlPlane` and `WorkerPool`.
 * Wiring only; the scripts are in `render.ts`, the kubeadm documents in `kubeadm.ts`.
 */
import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { parseTtlSeconds, type HostSpec } from "../config/spec";
import type { Hosts } from "../remote";
import { renderPrepareScript, renderTokenScript, type NodeSettings } from "./render";

export * from "./render";
export * from "./kubeadm";

/** How a node joins a hakube cluster (ControlPlane's `joinInfo` output, secret). */
export interface JoinInfo {
  /** `<vip>:<port>` */
  endpoint: string;
  /** bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` */
  token: string;
  /** `sha256:<hex>` of the cluster CA's public key */
  caCertHash: string;
}

/** Settings a node (and its join) needs: `hakube:kubernetes` without the cluster-wide networking. */
export type NodeKubernetesSettings = NodeSettings & { bootstrapTokenTtl: string };

/** The prepare script by settings object: every node of a component shares one rendering. */
const prepareScripts = new WeakMap<NodeSettings, string>();

/**
 * Prepare one host as a Kubernetes node: one `prepare` step (`${componentName}-prepare-${host}`)
 * after the host's preflight, in three parts — system, packages, containerd — each in its own
 * subshell (render.ts). Returns the step: kubeadm may run once it is done. Nothing is undone on
 * delete (packages and containerd stay; `kubeadm reset` is the join step's delete).
 */
export function prepareNode(
  hosts: Hosts,
  component: pulumi.ComponentResource,
  componentName: string,
  host: HostSpec,
  k: NodeSettings,
): command.remote.Command {
  let script = prepareScripts.get(k);
  if (script === undefined) {
    script = renderPrepareScript(k);
    prepareScripts.set(k, script);
  }
  return hosts.step(component, componentName, { host, step: "prepare", script });
}

/** TTL in seconds of `kubernetes.bootstrapTokenTtl` (validated by the config). */
export function tokenTtlSeconds(ttl: string): number {
  const s = parseTtlSeconds(ttl);
  if (s === undefined) throw new Error(`hakube: invalid bootstrap token TTL ${JSON.stringify(ttl)}`);
  return s;
}

/**
 * The `token` step for `joiner`, run on `controlPlane` (which has /etc/kubernetes/admin.conf):
 * the bootstrap token exists and is valid before `joiner` joins. Named
 * `${componentName}-token-${joiner}` whichever control plane runs it.
 */
export function ensureTokenStep(
  hosts: Hosts,
  component: pulumi.ComponentResource,
  componentName: string,
  a: { joiner: HostSpec; controlPlane: HostSpec; token: pulumi.Input<string>; ttl: string; dependsOn?: pulumi.Input<pulumi.Resource>[] },
): command.remote.Command {
  return hosts.step(component, componentName, {
    host: a.joiner,
    via: a.controlPlane,
    step: "token",
    script: renderTokenScript({ joiner: a.joiner.name, ttlSeconds: tokenTtlSeconds(a.ttl) }),
    secrets: [a.token],
    dependsOn: a.dependsOn,
  });
}
