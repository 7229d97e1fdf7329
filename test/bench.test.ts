/**
 * The benchmarks' checks as fast tests, on small generated topologies (bench/topology.ts):
 * determinism (a second evaluation with the same provider state gives identical inputs for
 * every resource) and blast radius (each single-knob change touches only what it may; bench/blast.ts).
 * `npm run bench` runs the same checks at 3–300 hosts, each evaluation in its own process.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { addedWorker, checkBlast, KNOBS, labelTarget } from "../bench/blast";
import { classify, commandsPerHost, diffInputs, inputsByKey } from "../bench/measure";
import { benchHosts, benchTopology, podSubnetFor } from "../bench/topology";
import { runProgram, type RunResult } from "./harness/program";

const BLAST_HOSTS = 10; // 2 load balancers, 3 etcd, 3 control planes, 2 workers

async function evaluate(config: ReturnType<typeof benchTopology>, state?: RunResult["harness"]["state"]): Promise<RunResult> {
  const r = await runProgram(config, state ? { state } : {});
  if (r.error) throw r.error;
  expect(r.harness.failures()).toEqual([]);
  return r;
}

describe("generated topologies", () => {
  it("role mix and a pod subnet with a /24 per node", () => {
    expect(benchHosts(3).map((h) => h.roles.join("+"))).toEqual(["loadbalancer+etcd+controlplane+worker", "loadbalancer+etcd+controlplane+worker", "etcd+controlplane+worker"]);
    const roles = (n: number) => {
      const c: Record<string, number> = {};
      for (const h of benchHosts(n)) c[h.roles.join("+")] = (c[h.roles.join("+")] ?? 0) + 1;
      return c;
    };
    expect(roles(30)).toEqual({ loadbalancer: 2, etcd: 3, controlplane: 3, worker: 22 });
    expect(roles(300)).toEqual({ loadbalancer: 2, etcd: 5, controlplane: 5, worker: 288 });
    expect(podSubnetFor(254)).toBe("10.64.0.0/16");
    expect(podSubnetFor(293)).toBe("10.64.0.0/15");
    expect(new Set(benchHosts(300).map((h) => h.internalAddress ?? h.address)).size).toBe(300);
  });
});

for (const n of [3, BLAST_HOSTS]) {
  describe(`determinism: ${n} generated hosts`, () => {
    it("a second evaluation with the same provider state: no resource's inputs differ", async () => {
      const a = await evaluate(benchTopology(n));
      const b = await evaluate(benchTopology(n), a.harness.state);
      const diff = diffInputs(inputsByKey(a.harness.registrations), inputsByKey(b.harness.registrations));
      expect(diff).toEqual({ added: [], removed: [], changed: [] });
      expect(a.harness.registrations.length).toBeGreaterThan(20);
    });
  });
}

describe(`blast radius: ${BLAST_HOSTS} generated hosts`, () => {
  const base = benchTopology(BLAST_HOSTS);
  const names = (base["hakube:hosts"] as { name: string }[]).map((h) => h.name);
  let before: RunResult;
  beforeAll(async () => {
    before = await evaluate(base);
  });
  const changeOf = async (id: string) => {
    const knob = KNOBS.find((k) => k.id === id)!;
    const config = knob.change(base);
    const after = await evaluate(config, before.harness.state);
    const diff = diffInputs(inputsByKey(before.harness.registrations), inputsByKey(after.harness.registrations));
    const hostNames = (config["hakube:hosts"] as { name: string }[]).map((h) => h.name);
    const short = (keys: string[]) => keys.map((k) => k.slice(k.lastIndexOf("::") + 2)).sort();
    return { knob, config, diff, result: checkBlast(knob, config, diff), changed: short(diff.changed), added: short(diff.added), hostNames, after };
  };

  it("at most 5 remote commands per host on create, 7 resources per worker at most", () => {
    const perHost = commandsPerHost(before.harness.registrations, names);
    expect(Math.max(...Object.values(perHost))).toBeLessThanOrEqual(5);
    expect(perHost.worker1).toBe(5);
  });

  it("VRRP id: only the load balancers' keepalived steps", async () => {
    const c = await changeOf("vrrp-id");
    expect(c.result.violations).toEqual([]);
    expect(c.changed).toEqual(["lb-keepalived-lb1", "lb-keepalived-lb2"]);
  });

  it("engine switch: only the load balancers' steps", async () => {
    const c = await changeOf("engine");
    expect(c.result.violations).toEqual([]);
    expect(c.changed).toEqual(["lb-keepalived-lb1", "lb-keepalived-lb2", "lb-packages-lb1", "lb-packages-lb2", "lb-proxy-lb1", "lb-proxy-lb2"]);
  });

  it("one worker's labels: only that worker's join", async () => {
    const c = await changeOf("labels");
    expect(labelTarget(base)).toBe("worker2");
    expect(c.result.violations).toEqual([]);
    expect(c.changed).toEqual(["workers-join-worker2"]);
  });

  it("adding a worker: its own resources, and the load balancers' ingress backends; no other host's resource changes", async () => {
    const c = await changeOf("add-worker");
    const w = addedWorker(base).name;
    expect(w).toBe("worker3");
    expect(c.result.violations).toEqual([]);
    expect(c.added).toEqual([`hosts-preflight-${w}`, `workers-drain-${w}`, `workers-join-${w}`, `workers-prepare-${w}`, `workers-token-${w}`]);
    expect(c.changed).toEqual(["lb-proxy-lb1", "lb-proxy-lb2"]);
    // the proxy steps changed by the new backend only
    const proxy = c.after.harness.commands().find((x) => x.name === "lb-proxy-lb1")!;
    expect(proxy.inputs.create).toContain(`server ${w} `);
    // with ingress off, nothing at all changes
    const noIngress = (cfg: typeof base) => ({ ...cfg, "hakube:loadBalancer": { ...(cfg["hakube:loadBalancer"] as object), ingress: undefined } });
    const quiet = await evaluate(noIngress(base), before.harness.state);
    const more = await evaluate(noIngress(c.knob.change(base)), quiet.harness.state);
    const d = diffInputs(inputsByKey(quiet.harness.registrations), inputsByKey(more.harness.registrations));
    expect(d.changed).toEqual([]);
    expect(d.added.every((k) => classify(k, [...names, w]).host === w)).toBe(true);
  });

  it("etcd version: only the etcd steps, no certificate", async () => {
    const c = await changeOf("etcd-version");
    expect(c.result.violations).toEqual([]);
    expect(c.changed).toEqual(["etcd-health-etcd1", ...["etcd1", "etcd2", "etcd3"].flatMap((h) => [`etcd-install-${h}`, `etcd-member-${h}`])].sort());
  });

  it("etcd deployment systemd → kubeadm: the etcd steps and the etcd hosts' preflights; node preparation added on the etcd hosts only", async () => {
    const c = await changeOf("etcd-deployment");
    expect(c.result.violations).toEqual([]);
    const etcd = ["etcd1", "etcd2", "etcd3"];
    expect(c.changed).toEqual(["etcd-health-etcd1", ...etcd.flatMap((h) => [`etcd-install-${h}`, `etcd-member-${h}`, `hosts-preflight-${h}`])].sort());
    expect(c.added).toEqual(etcd.map((h) => `etcd-prepare-${h}`));
  });

  it("Kubernetes version: the nodes' prepare steps and the first control plane's kubeadm step only", async () => {
    const c = await changeOf("kubernetes-version");
    expect(c.result.violations).toEqual([]);
    expect(c.changed).toEqual(["controlplane-kubeadm-cp1", "controlplane-prepare-cp1", "controlplane-prepare-cp2", "controlplane-prepare-cp3", "workers-prepare-worker1", "workers-prepare-worker2"]);
  });

  it("CNI: only the CNI step", async () => {
    const c = await changeOf("cni");
    expect(c.result.violations).toEqual([]);
    expect(c.changed).toEqual(["controlplane-cni-cp1"]);
  });

  it("the check itself catches a change outside what a knob may touch", () => {
    const knob = KNOBS.find((k) => k.id === "vrrp-id")!;
    const r = checkBlast(knob, base, { added: ["command:remote:Command::workers-join-worker9"], removed: [], changed: ["command:remote:Command::lb-keepalived-lb1", "tls:index/locallySignedCert:LocallySignedCert::etcd-server-etcd1-cert"] });
    expect(r.violations).toEqual(["changed tls:index/locallySignedCert:LocallySignedCert::etcd-server-etcd1-cert", "added command:remote:Command::workers-join-worker9"]);
  });
});
