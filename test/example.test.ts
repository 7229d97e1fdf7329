/**
 * examples/worker-pool: a WorkerPool in its own stack, reading `joinInfo` from the cluster's stack
 * through a StackReference (mocked: the monitor answers `pulumi:pulumi:StackReference`).
 */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { WORKER_STDIN } from "../components/workers/render";
import { TOKENS } from "./harness/mocks";
import { command, innerScript, stdinItems } from "./harness/fixtures";
import { readStackFile, runProgram, TEST_SSH_KEY, type StackConfig } from "./harness/program";

const JOIN_INFO = { endpoint: "10.0.0.100:6443", token: "abcdef.0123456789abcdef", caCertHash: `sha256:${"ab".repeat(32)}` };
const CLUSTER = "myorg/hakube/prod";

const config = (over: StackConfig = {}): StackConfig => ({
  "workerPool:clusterStack": CLUSTER,
  "workerPool:sshPrivateKey": TEST_SSH_KEY,
  "workerPool:hosts": [
    { name: "gpu1", address: "10.0.0.51", roles: ["worker"], labels: { "example.com/gpu": "a100" }, taints: ["nvidia.com/gpu=true:NoSchedule"] },
    { name: "gpu2", address: "10.0.0.52", roles: ["worker"] },
  ],
  ...over,
});

const run = (c: StackConfig, version = "1.37.1") =>
  runProgram(c, {
    module: "examples/worker-pool/index",
    project: "hakube-worker-pool",
    withProjectDefaults: false,
    secretKeys: ["workerPool:sshPrivateKey"],
    stackReferences: { [CLUSTER]: { outputs: { joinInfo: JOIN_INFO, kubernetesVersion: version }, secret: ["joinInfo"] } },
  });

describe("examples/worker-pool", () => {
  it("evaluates: a StackReference to the cluster stack, the pool's steps keyed by host, joinInfo on stdin only", async () => {
    const r = await run(config());
    if (r.error) throw r.error;
    const ref = r.harness.ofType(TOKENS.stackReference);
    expect(ref.map((x) => x.inputs.name)).toEqual([CLUSTER]);
    const names = r.harness.commands().map((c) => c.name).sort();
    expect(names).toEqual([
      "hosts-preflight-gpu1",
      "hosts-preflight-gpu2",
      "pool-join-gpu1",
      "pool-join-gpu2",
      "pool-prepare-gpu1",
      "pool-prepare-gpu2",
    ]);
    const join = command(r.harness, "pool-join-gpu1");
    expect(pulumi.runtime.isRpcSecret(join.rawInputs.stdin)).toBe(true);
    const items = stdinItems(join);
    expect(items[WORKER_STDIN.token]).toBe(JOIN_INFO.token);
    expect(items[WORKER_STDIN.endpoint]).toBe(JOIN_INFO.endpoint);
    expect(items[WORKER_STDIN.joinConfig]).toContain(JOIN_INFO.caCertHash);
    expect(items[WORKER_STDIN.joinConfig]).toContain("value: example.com/gpu=a100");
    for (const c of r.harness.commands()) {
      expect(c.inputs.create.includes("0123456789abcdef"), c.name).toBe(false);
      expect((c.inputs.delete ?? "").includes("0123456789abcdef"), c.name).toBe(false);
    }
    expect(innerScript(join.inputs.create)).toContain("check_bootstrap_token");
    expect(r.outputs!.nodes).toEqual(["gpu1", "gpu2"]);
  });

  it("with SSH access to a control plane: token refresh and drain run there", async () => {
    const r = await run(config({ "workerPool:controlPlane": { name: "cp1", address: "10.0.0.31", roles: ["controlplane"] }, "workerPool:name": "gpu" }));
    if (r.error) throw r.error;
    const names = r.harness.commands().map((c) => c.name);
    for (const n of ["gpu-token-gpu1", "gpu-drain-gpu1", "gpu-token-gpu2", "gpu-drain-gpu2", "hosts-preflight-cp1"]) expect(names).toContain(n);
    expect(command(r.harness, "gpu-token-gpu1").inputs.connection.host).toBe("10.0.0.31");
    expect(command(r.harness, "gpu-join-gpu1").dependencies).toContain("gpu-token-gpu1");
    expect(command(r.harness, "gpu-drain-gpu1").dependencies).toContain("gpu-join-gpu1");
  });

  it("installs the cluster's Kubernetes version unless told otherwise, and refuses another", async () => {
    const same = await run(config(), "1.36.4");
    if (same.error) throw same.error;
    expect(same.outputs!.kubernetesVersion).toBe("1.36.4");
    expect(innerScript(command(same.harness, "pool-prepare-gpu1").inputs.create)).toContain("https://pkgs.k8s.io/core:/stable:/v1.36/deb/");
    const r = await run(config({ "workerPool:kubernetes": { version: "1.37.1" } }), "1.36.4");
    expect(r.error?.message ?? "").toMatch(/workerPool:kubernetes\.version is 1\.37\.1 but the cluster runs 1\.36\.4/);
    expect(r.harness.commands()).toEqual([]);
  });

  it("invalid pool config: one error naming every problem", async () => {
    const r = await run(config({ "workerPool:hosts": [{ name: "Bad_Name", address: "10.0.0.51", roles: ["worker"] }], "workerPool:kubernetes": { containerd: { source: "snap" } } }));
    expect(r.error?.message).toMatch(/workerPool:hosts\[0\]\.name:[\s\S]*workerPool:kubernetes\.containerd\.source:/);
    expect(r.harness.commands()).toEqual([]);
  });

  it("its dev stack (the lab's: examples/worker-pool/Pulumi.dev.yaml) joins the dev cluster through the site's mirrors", async () => {
    const file = readStackFile("examples/worker-pool/Pulumi.dev.yaml");
    const dev = readStackFile("Pulumi.dev.yaml");
    const devHosts = dev["hakube:hosts"] as { name: string; address: string }[];
    const r = await runProgram(
      { ...file, "workerPool:sshPrivateKey": TEST_SSH_KEY },
      {
        module: "examples/worker-pool/index",
        project: "hakube-worker-pool",
        withProjectDefaults: false,
        secretKeys: ["workerPool:sshPrivateKey"],
        stackReferences: { [String(file["workerPool:clusterStack"])]: { outputs: { joinInfo: JOIN_INFO, kubernetesVersion: "1.37.2" }, secret: ["joinInfo"] } },
      },
    );
    if (r.error) throw r.error;
    expect(file["workerPool:clusterStack"]).toBe("organization/hakube/dev");
    const names = r.harness.commands().map((c) => c.name).sort();
    expect(names).toEqual(["hosts-preflight-cp1", "hosts-preflight-pool1", "pool-drain-pool1", "pool-join-pool1", "pool-prepare-pool1", "pool-token-pool1"]);
    // its control plane is the dev stack's cp1; its host is none of the dev stack's
    const cp = file["workerPool:controlPlane"] as { name: string; address: string };
    expect(devHosts.find((h) => h.name === cp.name)?.address).toBe(cp.address);
    for (const h of file["workerPool:hosts"] as { name: string; address: string }[]) {
      expect(devHosts.map((d) => d.name)).not.toContain(h.name);
      expect(devHosts.map((d) => d.address)).not.toContain(h.address);
    }
    // the same site settings as the cluster's stack (pause image, mirrors, registry)
    const prepare = innerScript(command(r.harness, "pool-prepare-pool1").inputs.create);
    const k = dev["hakube:kubernetes"] as { aptRepository: string; imageRepository: string };
    expect(prepare).toContain(k.aptRepository);
    expect(prepare).toContain(`${k.imageRepository}/pause:`);
  });
});
