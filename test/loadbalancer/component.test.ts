/**
 * LoadBalancerPair wiring, evaluated through index.ts with the recording mocks: names,
 * parents, ordering, data flow of the CA, secrets, outputs; dev config and its variants
 * (nginx, ingress, load balancers co-located with the control planes on port 8443).
 */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { parseClusterSpec } from "../../components/config/spec";
import { createHarness, type Registration } from "../harness/mocks";
import { readStackFile, runProgram, TEST_SSH_KEY, valueOf, type StackConfig } from "../harness/program";

/** Pulumi.dev.yaml's config with the namespace dropped from the keys (so variants can override them). */
const dev = (): StackConfig => ({
  ...Object.fromEntries(Object.entries(readStackFile("Pulumi.dev.yaml")).map(([k, v]) => [k.replace(/^hakube:/, ""), v])),
  sshPrivateKey: TEST_SSH_KEY,
});
const devLb = () => dev().loadBalancer as Record<string, unknown>;
type Host = { name: string; address: string; roles: string[] };
const devHosts = () => dev().hosts as Host[];

async function run(config: StackConfig, opts: Parameters<typeof runProgram>[1] = {}) {
  const r = await runProgram(config, opts);
  if (r.error) throw r.error;
  const cmds = r.harness.commands();
  const byName = (n: string): Registration => {
    const c = cmds.find((x) => x.name === n);
    if (!c) throw new Error(`no command ${n}; have ${cmds.map((x) => x.name).join(", ")}`);
    return c;
  };
  const urns = [...((pulumi.runtime as any).getMonitor().resources.keys() as Iterable<string>)];
  return { ...r, cmds, byName, urns, lbCmds: cmds.filter((c) => c.name.startsWith("lb-")) };
}

describe("LoadBalancerPair (dev config)", () => {
  it("creates packages → proxy → keepalived per load balancer, named and parented by the component", async () => {
    const { lbCmds, urns, byName, outputs } = await run(dev());
    expect(lbCmds.map((c) => c.name).sort()).toEqual(
      ["packages", "proxy", "keepalived"].flatMap((s) => ["lb1", "lb2"].map((h) => `lb-${s}-${h}`)).sort(),
    );
    expect(urns).toContain("urn:pulumi:dev::hakube::hakube:lb:LoadBalancerPair::lb");
    for (const c of lbCmds) expect(urns).toContain(`urn:pulumi:dev::hakube::hakube:lb:LoadBalancerPair$command:remote:Command::${c.name}`);
    // ordering: preflight → packages → proxy → keepalived, per host
    for (const h of ["lb1", "lb2"]) {
      const chain = [`hosts-preflight-${h}`, `lb-packages-${h}`, `lb-proxy-${h}`, `lb-keepalived-${h}`].map(byName);
      for (let i = 1; i < chain.length; i++) expect(chain[i].startMs, chain[i].name).toBeGreaterThanOrEqual(chain[i - 1].endMs!);
    }
    // every step runs on its own host as root
    for (const c of lbCmds) {
      const host = devHosts().find((h) => c.name.endsWith(`-${h.name}`))!;
      expect(c.inputs.connection.host).toBe(host.address);
      expect(c.inputs.create).toMatch(new RegExp(`^# hakube: \\w+ on ${host.name}\\nexec bash --norc --noprofile -c`));
    }
    expect(outputs!.vip).toBe("10.123.0.100");
    expect(outputs!.apiServerEndpoint).toBe("https://10.123.0.100:6443");
  });

  it("puts the Kubernetes CA (public, from the PKI) in the proxy step and verifies the API servers with it", async () => {
    const { byName, outputs } = await run(dev());
    const ca = await new Promise<string>((res) => pulumi.output(outputs!.clusterCaCertificate as pulumi.Output<string>).apply((v) => (res(v), v)));
    for (const h of ["lb1", "lb2"]) {
      const proxy = byName(`lb-proxy-${h}`);
      expect(proxy.inputs.create).toContain(ca.trim());
      expect(pulumi.runtime.isRpcSecret(proxy.rawInputs.create)).toBe(false); // previews show it
      const s = proxy.inputs.create as string;
      expect(s).toContain("default-server check check-ssl verify required ca-file /etc/haproxy/hakube-kubernetes-ca.crt check-sni kubernetes verifyhost kubernetes");
      expect(s).toContain("option httpchk GET /readyz");
      expect(s).toContain("http-check expect status 200");
      expect(s).not.toMatch(/verify none/);
      for (const [cp, ip] of [["cp1", "10.123.0.31"], ["cp2", "10.123.0.32"], ["cp3", "10.123.0.33"]]) expect(s).toContain(`server ${cp} ${ip}:6443\n`);
      expect(s).toContain("bind 0.0.0.0:6443");
      expect(s).toMatch(/lb_validate haproxy "\$candidate"\nhakube_put \/etc\/haproxy\/haproxy.cfg 0644 root root < "\$candidate"/);
    }
  });

  it("gives deterministic VRRP priorities from host order, unicast peers and VRRPv3 at 0.2 s", async () => {
    const { byName } = await run(dev());
    const k1 = byName("lb-keepalived-lb1").inputs.create as string;
    const k2 = byName("lb-keepalived-lb2").inputs.create as string;
    expect(k1).toContain("priority 200\n");
    expect(k2).toContain("priority 199\n");
    expect(k1).toMatch(/unicast_src_ip 10\.123\.0\.11\n {4}unicast_peer \{\n {8}10\.123\.0\.12\n {4}\}/);
    expect(k2).toMatch(/unicast_src_ip 10\.123\.0\.12\n {4}unicast_peer \{\n {8}10\.123\.0\.11\n {4}\}/);
    for (const k of [k1, k2]) {
      expect(k).toContain("vrrp_version 3");
      expect(k).toContain("advert_int 0.2\n");
      expect(k).toContain("    state BACKUP\n");
      expect(k).not.toContain("nopreempt"); // preemption on: the holder's bonus keeps the VIP where it is
      expect(k).toContain("    weight -100\n");
      expect(k).toMatch(/track_file \{\n {8}hakube_holder\n {4}\}\n {4}notify "\/etc\/keepalived\/hakube-notify.sh" root\n/);
      expect(k).toContain("10.123.0.100/24 dev host0");
      expect(k).toContain("virtual_router_id 51\n");
      expect(k).toContain("enable_script_security");
      expect(k).not.toMatch(/auth_type|auth_pass|pidof/);
      expect(k).toContain("lb_validate keepalived \"$candidate\"");
    }
  });

  it("keeps secrets out of every load-balancer command", async () => {
    const { lbCmds } = await run(dev());
    for (const c of lbCmds) {
      for (const text of [c.inputs.create, c.inputs.delete ?? ""]) {
        expect(text).not.toContain("TEST-SSH-KEY");
        expect(text).not.toMatch(/PRIVATE KEY/);
      }
      expect(c.inputs.stdin).toBeUndefined();
    }
  });

  it("is deterministic: the same state gives byte-identical commands", async () => {
    const a = await run(dev());
    const b = await run(dev(), { state: a.harness.state });
    const texts = (r: typeof a) => r.lbCmds.map((c) => [c.name, c.inputs.create, c.inputs.delete]).sort();
    expect(texts(b)).toEqual(texts(a));
  });

  it("reserves the health port and rejects a load balancer on the API server's port on a control plane", async () => {
    const r1 = await runProgram({ ...dev(), loadBalancer: { ...devLb(), port: 8404 } });
    expect(r1.error?.message).toMatch(/hakube:loadBalancer\.port: 8404 is reserved for the load balancers' local health endpoint/);
    const hosts = devHosts().map((h) => (h.name.startsWith("cp") ? { ...h, roles: [...h.roles, "loadbalancer"] } : h));
    const r2 = await runProgram({ ...dev(), hosts });
    expect(r2.error?.message).toMatch(/6443 clashes on hakube:hosts\[5\] \(cp1, loadbalancer \+ controlplane\) with the API server/);
  });
});

describe("LoadBalancerPair variants", () => {
  it("nginx: installs the stream module, owns the whole nginx.conf, no active checks", async () => {
    const { byName } = await run({ ...dev(), loadBalancer: { ...devLb(), engine: "nginx" } });
    expect(byName("lb-packages-lb1").inputs.create).toContain("hakube_apt_install nginx libnginx-mod-stream keepalived");
    const s = byName("lb-proxy-lb1").inputs.create as string;
    expect(s).toContain("load_module /usr/lib/nginx/modules/ngx_stream_module.so;");
    expect(s).not.toMatch(/^\s*include /m);
    expect(s).not.toMatch(/^\s*http \{/m);
    expect(s).toContain("server 10.123.0.31:6443 max_fails=2 fail_timeout=10s;");
    expect(s).toContain("lb_validate nginx \"$candidate\"");
    expect(s).toContain("hakube_put /etc/nginx/nginx.conf 0644 root root");
    expect(s).not.toContain("BEGIN CERTIFICATE"); // nginx does no verified checks: no CA on the host
    expect(byName("lb-keepalived-lb1").inputs.create).toContain("nginx answers on its local health endpoint");
  });

  it("ingress: TCP frontends to every worker's nodePort, health-checked", async () => {
    const { byName, harness } = await run({
      ...dev(),
      loadBalancer: { ...devLb(), ingress: { http: { port: 80, nodePort: 30080 }, https: { port: 443, nodePort: 30443 } } },
    });
    const s = byName("lb-proxy-lb2").inputs.create as string;
    expect(s).toContain("frontend ingress-http\n    bind 0.0.0.0:80\n");
    expect(s).toContain("frontend ingress-https\n    bind 0.0.0.0:443\n");
    for (const [w, ip] of [["worker1", "10.123.0.41"], ["worker2", "10.123.0.42"]]) {
      expect(s).toContain(`server ${w} ${ip}:30080\n`);
      expect(s).toContain(`server ${w} ${ip}:30443\n`);
    }
    expect(s).toMatch(/backend ingress-http\n {4}balance leastconn\n {4}default-server check inter/);
    // the check script requires every frontend to listen
    expect(byName("lb-keepalived-lb2").inputs.create).toContain('want=" 6443 80 443 "');
    // the preflight knows the ports are ours on a re-run
    const pre = harness.commands().find((c) => c.name === "hosts-preflight-lb2")!.inputs.create as string;
    for (const port of [80, 443, 6443, 8404]) expect(pre).toMatch(new RegExp(`check_port ${port} .* 'haproxy nginx'`));
  });

  it("co-located with the control planes on port 8443", async () => {
    const hosts = devHosts()
      .filter((h) => !h.name.startsWith("lb"))
      .map((h) => (h.name.startsWith("cp") ? { ...h, roles: ["controlplane", "loadbalancer"] } : h));
    const { lbCmds, byName, outputs, harness } = await run({ ...dev(), hosts, loadBalancer: { ...devLb(), port: 8443 } });
    expect(lbCmds.map((c) => c.name).filter((n) => n.startsWith("lb-keepalived-")).sort()).toEqual(["lb-keepalived-cp1", "lb-keepalived-cp2", "lb-keepalived-cp3"]);
    const s = byName("lb-proxy-cp2").inputs.create as string;
    expect(s).toContain("bind 0.0.0.0:8443");
    expect(s).toContain("server cp2 10.123.0.32:6443\n"); // its own API server is a backend too
    const k = byName("lb-keepalived-cp3").inputs.create as string;
    expect(k).toContain("priority 198\n");
    expect(k).toMatch(/unicast_peer \{\n {8}10\.123\.0\.31\n {8}10\.123\.0\.32\n {4}\}/);
    expect(k).toContain("exec 3<>/dev/tcp/10.123.0.100/8443");
    expect(outputs!.apiServerEndpoint).toBe("https://10.123.0.100:8443");
    const pre = harness.commands().find((c) => c.name === "hosts-preflight-cp1")!.inputs.create as string;
    expect(pre).toMatch(/check_port 8443 .* 'haproxy nginx'/);
    expect(pre).toMatch(/check_port 6443 .* kube-apiserver/);
  });

  it("one load balancer: keepalived without peers (warned as not HA)", async () => {
    const hosts = devHosts().filter((h) => h.name !== "lb2");
    const { byName, warnings, lbCmds } = await run({ ...dev(), hosts });
    expect(warnings.join("\n")).toMatch(/1 load balancer: the VIP has no standby/);
    expect(lbCmds).toHaveLength(3);
    const k = byName("lb-keepalived-lb1").inputs.create as string;
    expect(k).toContain("unicast_src_ip 10.123.0.11\n    virtual_ipaddress");
  });
});

describe("LoadBalancerPair API for the other components", () => {
  it("exposes vip, port, endpoint, host names and `ready` (each host's keepalived step)", async () => {
    const h = createHarness();
    pulumi.runtime.setAllConfig({}, []);
    await pulumi.runtime.setMocks(h.mocks, "hakube", "dev");
    const { LoadBalancerPair } = await import("../../components/loadbalancer");
    const { Hosts } = await import("../../components/remote");
    const values = Object.fromEntries(Object.entries(dev()).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
    const { spec } = parseClusterSpec({ stackName: "dev", values, secretKeys: new Set(["sshPrivateKey"]) });
    const remote = new Hosts("hosts", { hosts: spec.hosts, sshPrivateKey: "k", ports: {} });
    const role = (r: string) => spec.hosts.filter((x) => x.roles.includes(r as never));
    const pair = new LoadBalancerPair("lb", {
      clusterName: spec.clusterName,
      loadBalancer: spec.loadBalancer,
      hosts: role("loadbalancer"),
      controlPlanes: role("controlplane"),
      workers: role("worker"),
      kubernetesCaCertPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
      remote,
    });
    expect([pair.vip, pair.port, pair.endpoint, pair.hostNames]).toEqual(["10.123.0.100", 6443, "https://10.123.0.100:6443", ["lb1", "lb2"]]);
    const urns = await Promise.all(pair.ready.map((r) => valueOf(r.urn)));
    expect(urns.map((u) => u.split("::").pop())).toEqual(["lb-keepalived-lb1", "lb-keepalived-lb2"]);
  });
});
