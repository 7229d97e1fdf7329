/**
 * examples/app-on-cluster: an application deployed with @pulumi/kubernetes through the cluster
 * stack's `kubeconfig` output (a StackReference, answered by the mocks). Evaluated under mocks:
 * no API server, no Kubernetes provider plugin.
 */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { TOKENS } from "./harness/mocks";
import { runProgram, valueOf, type StackConfig } from "./harness/program";

const CLUSTER = "myorg/hakube/prod";
const KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters:\n- cluster: { server: https://192.0.2.100:6443 }\n  name: prod\nusers:\n- name: admin\n  user: { client-key-data: U0VDUkVULUtFWQ== }\n";

const run = (config: StackConfig = {}) =>
  runProgram(
    { "app:clusterStack": CLUSTER, ...config },
    {
      module: "examples/app-on-cluster/index",
      project: "hakube-app",
      withProjectDefaults: false,
      secretKeys: [],
      passThrough: (t) => t === "pulumi:providers:kubernetes" || t.startsWith("kubernetes:"),
      stackReferences: { [CLUSTER]: { outputs: { kubeconfig: KUBECONFIG, vip: "192.0.2.100" }, secret: ["kubeconfig"] } },
    },
  );

describe("examples/app-on-cluster", () => {
  it("the Kubernetes provider gets the cluster stack's kubeconfig, as a secret", async () => {
    const r = await run();
    if (r.error) throw r.error;
    expect(r.harness.ofType(TOKENS.stackReference).map((x) => x.inputs.name)).toEqual([CLUSTER]);
    const [provider] = r.harness.ofType("pulumi:providers:kubernetes");
    expect(provider.inputs.kubeconfig).toBe(KUBECONFIG);
    expect(pulumi.runtime.isRpcSecret(provider.rawInputs.kubeconfig)).toBe(true);
    // nothing else carries it, and no resource holds it in plain text
    for (const reg of r.harness.registrations.filter((x) => x !== provider)) expect(JSON.stringify(reg.rawInputs)).not.toContain("U0VDUkVULUtFWQ==");
  });

  it("every Kubernetes resource goes through that provider; the Service selects the Deployment's Pods on the ingress NodePort", async () => {
    const r = await run({ "app:replicas": "3" });
    if (r.error) throw r.error;
    const k8s = r.harness.registrations.filter((x) => x.type.startsWith("kubernetes:"));
    expect(k8s.map((x) => `${x.type}::${x.name}`).sort()).toEqual(["kubernetes:apps/v1:Deployment::hello", "kubernetes:core/v1:Namespace::hello", "kubernetes:core/v1:Service::hello"]);
    for (const x of k8s) expect(x.provider, x.name).toMatch(/::pulumi:providers:kubernetes::hakube::/);
    const dep = k8s.find((x) => x.type === "kubernetes:apps/v1:Deployment")!.inputs;
    const svc = k8s.find((x) => x.type === "kubernetes:core/v1:Service")!.inputs;
    expect(dep.metadata.namespace).toBe("hello");
    expect(dep.spec.replicas).toBe(3);
    expect(dep.spec.selector.matchLabels).toEqual(dep.spec.template.metadata.labels);
    expect(svc.spec.selector).toEqual(dep.spec.template.metadata.labels);
    expect(svc.spec).toMatchObject({ type: "NodePort", ports: [{ port: 80, targetPort: "http", nodePort: 30080 }] });
    expect(dep.spec.template.spec.containers[0].ports).toEqual([{ name: "http", containerPort: 8080 }]);
    expect(r.harness.commands()).toEqual([]);
    expect(await valueOf(r.outputs!.url as pulumi.Output<string>)).toBe("http://192.0.2.100/");
  });

  it("without the cluster stack setting it fails before registering anything", async () => {
    const r = await runProgram({}, { module: "examples/app-on-cluster/index", project: "hakube-app", withProjectDefaults: false, secretKeys: [] });
    expect(r.error?.message).toMatch(/app:clusterStack/);
    expect(r.harness.registrations).toEqual([]);
  });
});
