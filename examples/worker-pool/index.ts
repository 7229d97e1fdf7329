// A hakube WorkerPool in its own stack: the workers join the cluster of another stack, read
// with a StackReference. Nothing else from the cluster's program is needed (README.md).
//
// The program is an async function (Pulumi awaits it): it reads the cluster's Kubernetes
// version first, so the pool installs the same one unless told otherwise — and refuses another.
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseNodePoolConfig, portNeedsByHost, type HostSpec } from "../../components/config";
import type { JoinInfo } from "../../components/node";
import { Hosts } from "../../components/remote";
import { WorkerPool } from "../../components/workers";

export = async () => {
  const config = new pulumi.Config("workerPool");
  const cluster = new pulumi.StackReference(config.require("clusterStack"));
  const clusterVersion = (await cluster.getOutputDetails("kubernetesVersion")).value as string | undefined;
  if (!clusterVersion) throw new pulumi.RunError(`stack ${cluster.name} has no kubernetesVersion output: is it a hakube stack?`);

  let workers: HostSpec[];
  let kubernetes: ReturnType<typeof parseNodePoolConfig>["kubernetes"];
  let controlPlane: HostSpec | undefined;
  try {
    const common = { namespace: "workerPool", sshUser: config.get("sshUser"), sshPort: config.getNumber("sshPort") };
    const k8s = config.getObject<Record<string, unknown>>("kubernetes") ?? {};
    const parsed = parseNodePoolConfig({ ...common, hosts: config.requireObject("hosts"), kubernetes: { version: clusterVersion, ...k8s } });
    ({ hosts: workers, kubernetes } = parsed);
    for (const w of parsed.warnings) pulumi.log.warn(w);
    const cp = config.getObject<unknown>("controlPlane");
    if (cp !== undefined) {
      controlPlane = parseNodePoolConfig({ ...common, hosts: [cp], roles: ["controlplane", "etcd", "loadbalancer", "worker"] }).hosts[0];
      if (!controlPlane.roles.includes("controlplane")) throw new ConfigError(["workerPool:controlPlane.roles: must include controlplane"]);
    }
  } catch (e) {
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
  if (kubernetes.version !== clusterVersion)
    throw new pulumi.RunError(`workerPool:kubernetes.version is ${kubernetes.version} but the cluster runs ${clusterVersion}: leave it unset or set it to ${clusterVersion}`);

  const hosts = new Hosts("hosts", {
    hosts: [...workers, ...(controlPlane ? [controlPlane] : [])],
    sshPrivateKey: config.requireSecret("sshPrivateKey"),
    // only the workers' ports: the control plane's are held by its own services
    ports: portNeedsByHost({ hosts: workers }),
  });

  const pool = new WorkerPool(config.get("name") ?? "pool", {
    hosts,
    workers,
    // a secret output of the cluster's stack: { endpoint, token, caCertHash }
    joinInfo: cluster.requireOutput("joinInfo") as pulumi.Output<JoinInfo>,
    kubernetes,
    ...(controlPlane ? { controlPlane } : {}),
  });

  return { nodes: pool.nodeNames, kubernetesVersion: kubernetes.version };
};
