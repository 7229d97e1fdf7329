/**
 * examples/node-pools: the cluster composed from the library with several WorkerPools (pool-wide
 * labels and taints) and ingress on the general pool only. Evaluated under mocks.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { WORKER_STDIN } from "../components/workers/render";
import { command, stdinItems } from "./harness/fixtures";
import { readStackFile, runProgram, TEST_SSH_KEY, type RunResult, type StackConfig } from "./harness/program";

const POOLS = {
  gpu: { hosts: ["gpu1", "gpu2"], labels: { "example.com/accelerator": "nvidia-a100" }, taints: ["nvidia.com/gpu=true:NoSchedule"] },
  batch: { hosts: ["w2"], labels: { "example.com/workload": "batch" }, taints: ["example.com/batch=true:PreferNoSchedule"] },
};
const config = (pools: unknown = POOLS): StackConfig => ({ ...readStackFile("Pulumi.prod.example.yaml"), sshPrivateKey: TEST_SSH_KEY, "pools:pools": pools });
const run = (c: StackConfig) => runProgram(c, { module: "examples/node-pools/index", project: "hakube-node-pools", stack: "prod" });

describe("examples/node-pools", () => {
  let r: RunResult;
  beforeAll(async () => {
    r = await run(config());
    if (r.error) throw r.error;
  });

  it("one WorkerPool per pool, steps keyed by pool and host; workers in no pool form 'general'", async () => {
    const pools = r.harness.registrations.filter((x) => x.type === "hakube:k8s:WorkerPool").map((x) => x.name).sort();
    expect(pools).toEqual(["pool-batch", "pool-general", "pool-gpu"]);
    const joins = r.harness.commands().filter((c) => /-join-/.test(c.name)).map((c) => c.name).sort();
    expect(joins).toEqual(["pool-batch-join-w2", "pool-general-join-w1", "pool-gpu-join-gpu1", "pool-gpu-join-gpu2"]);
    expect(r.outputs!.nodePools).toEqual({ gpu: ["gpu1", "gpu2"], batch: ["w2"], general: ["w1"] });
    // the pools join after kubeadm init, each after its token check on the first control plane
    expect(command(r.harness, "pool-gpu-join-gpu1").dependencies).toEqual(expect.arrayContaining(["controlplane-kubeadm-cp1", "pool-gpu-token-gpu1"]));
    expect(command(r.harness, "pool-gpu-token-gpu1").inputs.connection.host).toBe("192.0.2.31");
  });

  it("pool labels and taints join the host's own at registration", async () => {
    const gpu = stdinItems(command(r.harness, "pool-gpu-join-gpu1"))[WORKER_STDIN.joinConfig];
    expect(gpu).toContain("example.com/accelerator=nvidia-a100");
    expect(gpu).toContain("example.com/gpu=a100"); // the host's own label
    expect(gpu.match(/key: nvidia\.com\/gpu/g)?.length).toBe(1); // pool and host name the same taint: once
    const batch = stdinItems(command(r.harness, "pool-batch-join-w2"))[WORKER_STDIN.joinConfig];
    expect(batch).toContain("example.com/workload=batch");
    expect(batch).toMatch(/- key: example\.com\/batch\n\s+value: "?true"?\n\s+effect: PreferNoSchedule\n/);
    const general = stdinItems(command(r.harness, "pool-general-join-w1"))[WORKER_STDIN.joinConfig];
    expect(general).not.toContain("example.com/workload");
  });

  it("ingress forwards to the general pool only", async () => {
    const proxy = command(r.harness, "lb-proxy-lb1").inputs.create as string;
    expect(proxy).toContain("server w1 192.0.2.41:30080");
    for (const h of ["w2", "gpu1", "gpu2"]) expect(proxy).not.toContain(`server ${h} `);
  });

  it("a bad pools:pools fails before any resource is registered, naming every problem", async () => {
    const bad = await run(config({ gpu: { hosts: ["gpu1", "nope", "cp1"], taints: ["bad taint"] }, other: { hosts: ["gpu1"], labels: { "node-role.kubernetes.io/gpu": "" } } }));
    const m = bad.error?.message ?? "";
    expect(m).toMatch(/pools:pools\.gpu\.hosts\[1\]: "nope" is not a worker/);
    expect(m).toMatch(/pools:pools\.gpu\.hosts\[2\]: "cp1" is not a worker/);
    expect(m).toMatch(/pools:pools\.gpu\.taints\[0\]:/);
    expect(m).toMatch(/pools:pools\.other\.hosts\[0\]: "gpu1" is already in pool gpu/);
    expect(m).toMatch(/pools:pools\.other\.labels\["node-role\.kubernetes\.io\/gpu"\]: the kubelet may not set this label/);
    expect(bad.harness.registrations).toEqual([]);
  });
});
