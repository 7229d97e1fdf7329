/**
 * `WorkerPool` (hakube:k8s:WorkerPool): worker nodes that join a hakube cluster with `joinInfo`.
 *
 * Its inputs are the workers, a `Hosts` (their SSH access), `joinInfo`, and the Kubernetes node
 * settings — nothing else from the cluster's program — so another stack can add a pool with
 * `new pulumi.StackReference(...).getOutput("joinInfo")` (examples/worker-pool).
 *
 * Per worker: node preparation, then `join` (kubeadm join; its delete is kubeadm reset + clean-up).
 * Joins run in parallel. With `controlPlane` (a host with /etc/kubernetes/admin.conf that `hosts`
 * reaches) two more steps run there per worker: `token` before the join (the bootstrap token
 * exists and is valid, however old the cluster is) and `drain` after it (on delete: drain and
 * delete the node before the worker is reset). Without it the token must already be valid (the
 * join checks and says so) and removed nodes stay in the API as NotReady until deleted.
 */
import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { HostSpec } from "../config/spec";
import { asComment, ensureTokenStep, prepareNode, preflightErrorsToIgnore, REDACTED, renderWorkerJoinConfig, type JoinInfo, type NodeKubernetesSettings } from "../node";
import type { Hosts } from "../remote";
import {
  renderDrainCreateScript,
  renderDrainDeleteScript,
  renderWorkerJoinScript,
  renderWorkerResetScript,
  WORKER_JOIN_CONFIG_PATH,
  WORKER_STDIN,
} from "./render";

export type { JoinInfo } from "../node";

export interface WorkerPoolArgs {
  /** Runs the steps (its SSH key reaches the workers, and `controlPlane` when given). */
  hosts: Hosts;
  /**
   * The workers: role `worker` and not `controlplane` (refused otherwise). May be empty. Their
   * `labels` and `taints` apply at registration (kubelet-settable labels only: the parsers check).
   * Names must not collide with another pool's: the node name is the host name.
   */
  workers: HostSpec[];
  /** `{ endpoint: "<vip>:<port>", token, caCertHash: "sha256:<hex>" }` (treated as secret), e.g. `ControlPlane.joinInfo` or a StackReference output of the cluster's stack. */
  joinInfo: pulumi.Input<JoinInfo>;
  /**
   * Node settings as in `hakube:kubernetes`: `version` (must equal the cluster's), `packages`,
   * `aptRepository`, `containerd`, `bootstrapTokenTtl` (Go duration, default `24h`; used by the
   * token step when `controlPlane` is given).
   */
  kubernetes: NodeKubernetesSettings;
  /** Optional: a control plane (it has /etc/kubernetes/admin.conf) that `hosts` reaches; it refreshes the bootstrap token before joins and drains removed workers. Without it the token must be valid and removed nodes stay NotReady until deleted. */
  controlPlane?: HostSpec;
  /** Joins wait for these (e.g. `ControlPlane.initialized`). Default none. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class WorkerPool extends pulumi.ComponentResource {
  /** Each worker's join step, by host name. */
  readonly joins: Record<string, command.remote.Command>;
  readonly nodeNames: string[];

  constructor(name: string, args: WorkerPoolArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hakube:k8s:WorkerPool", name, {}, opts);
    const { hosts, kubernetes: k } = args;
    const bad = args.workers.filter((h) => !h.roles.includes("worker") || h.roles.includes("controlplane"));
    if (bad.length) throw new Error(`hakube: WorkerPool ${name}: ${bad.map((h) => h.name).join(", ")} must have role worker and not controlplane`);
    const joinInfo = pulumi.secret(pulumi.output(args.joinInfo));
    const token = joinInfo.apply((j) => j.token);
    const endpoint = joinInfo.apply((j) => j.endpoint);

    const nodeOptions = { ignorePreflightErrors: preflightErrorsToIgnore(k) };
    this.joins = {};
    for (const host of args.workers) {
      const prepared = prepareNode(hosts, this, name, host, k);
      const tokenStep = args.controlPlane
        ? ensureTokenStep(hosts, this, name, { joiner: host, controlPlane: args.controlPlane, token, ttl: k.bootstrapTokenTtl, dependsOn: args.dependsOn })
        : undefined;
      const joinConfig = joinInfo.apply((j) => renderWorkerJoinConfig(host, j, nodeOptions));
      const preview = asComment(
        `${WORKER_JOIN_CONFIG_PATH} (on stdin; joinInfo redacted)`,
        renderWorkerJoinConfig(host, { endpoint: "<joinInfo.endpoint>", token: REDACTED, caCertHash: "<joinInfo.caCertHash>" }, nodeOptions),
      );
      const secrets: pulumi.Input<string>[] = [];
      secrets[WORKER_STDIN.joinConfig] = joinConfig;
      secrets[WORKER_STDIN.token] = token;
      secrets[WORKER_STDIN.endpoint] = endpoint;
      const join = hosts.step(this, name, {
        host,
        step: "join",
        script: renderWorkerJoinScript({ host: host.name, preview }),
        secrets,
        deleteScript: renderWorkerResetScript({ host: host.name }),
        dependsOn: [prepared, ...(tokenStep ? [tokenStep] : []), ...(args.dependsOn ?? [])],
      });
      this.joins[host.name] = join;
      if (args.controlPlane) {
        // depends on the join, so on delete it runs first: drain and delete the node, then the worker resets
        hosts.step(this, name, {
          host,
          via: args.controlPlane,
          step: "drain",
          script: renderDrainCreateScript({ host: host.name }),
          deleteScript: renderDrainDeleteScript({ host: host.name }),
          dependsOn: [join],
        });
      }
    }
    this.nodeNames = args.workers.map((h) => h.name);
    this.registerOutputs({ nodes: this.nodeNames });
  }
}
