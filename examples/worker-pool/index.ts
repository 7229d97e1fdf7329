// A hakube WorkerPool in its own stack: the workers join the cluster of another stack, read
// with a StackReference. Nothing else from the cluster's program is needed (README.md).
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseNodePoolConfig, portNeedsByHost, type HostSpec } from "../../components/config";
import type { JoinInfo } from "../../components/node";
import { Hosts } from "../../components/remote";
import { WorkerPool } from "../../components/workers";

const config = new pulumi.Config("workerPool");

function load(): { workers: HostSpec[]; kubernetes: ReturnType<typeof parseNodePoolConfig>["kubernetes"]; controlPlane?: HostSpec } {
  try {
    const common = { namespace: "workerPool", sshUser: config.get("sshUser"), sshPort: config.getNumber("sshPort") };
    const { hosts: workers, kubernetes } = parseNodePoolConfig({ ...common, hosts: config.requireObject("hosts"), kubernetes: config.getObject("kubernetes") });
    const cp = config.getObject<unknown>("controlPlane");
    const controlPlane = cp === undefined ? undefined : parseNodePoolConfig({ ...common, hosts: [cp], roles: ["controlplane", "etcd", "loadbalancer", "worker"] }).hosts[0];
    if (controlPlane && !controlPlane.roles.includes("controlplane"))
      throw new ConfigError([`workerPool:controlPlane.roles: must include controlplane`]);
    return { workers, kubernetes, ...(controlPlane ? { controlPlane } : {}) };
  } catch (e) {
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}

const { workers, kubernetes, controlPlane } = load();
const cluster = new pulumi.StackReference(config.require("clusterStack"));

// joinInfo is a secret output of the cluster's stack; the pool's Kubernetes version must be the cluster's.
const joinInfo = pulumi
  .all([cluster.requireOutput("joinInfo"), cluster.requireOutput("kubernetesVersion")])
  .apply(([j, version]) => {
    if (version !== kubernetes.version)
      throw new pulumi.RunError(`workerPool:kubernetes.version is ${kubernetes.version} but the cluster runs ${version}: set it to ${version}`);
    return j as JoinInfo;
  });

const hosts = new Hosts("hosts", {
  hosts: [...workers, ...(controlPlane ? [controlPlane] : [])],
  sshPrivateKey: config.requireSecret("sshPrivateKey"),
  // only the workers' ports: the control plane's are held by its own services
  ports: portNeedsByHost({ hosts: workers }),
});

const pool = new WorkerPool(config.get("name") ?? "pool", {
  hosts,
  workers,
  joinInfo: pulumi.secret(joinInfo),
  kubernetes,
  ...(controlPlane ? { controlPlane } : {}),
});

export const nodes = pool.nodeNames;
