/**
 * The component's own outputs (index.ts exports only the endpoints): built directly under the
 * harness mocks, the way the control-plane component will consume them.
 */
import { X509Certificate } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { expect, test } from "vitest";
import type { HostSpec } from "../../components/config/spec";
import { createHarness } from "../harness/mocks";
import { settle, valueOf } from "../harness/program";

const host = (name: string, ip: string): HostSpec => ({
  name,
  address: ip,
  internalAddress: ip,
  roles: ["etcd"],
  user: "root",
  port: 22,
  labels: {},
  taints: [],
});

test("endpoints, CA, apiserver client certificate and (secret) key; the health gate is a resource after the members", async () => {
  const harness = createHarness();
  await pulumi.runtime.setMocks(harness.mocks, "hakube", "outputs");
  const { ClusterPki } = await import("../../components/pki");
  const { Hosts } = await import("../../components/remote");
  const { EtcdCluster } = await import("../../components/etcd");
  const members = [host("b", "10.0.0.2"), host("a", "10.0.0.1"), host("c", "10.0.0.3")];
  const pki = new ClusterPki("pki", { clusterName: "t", algorithm: "ECDSA-P256" });
  const hosts = new Hosts("hosts", { hosts: members, sshPrivateKey: pulumi.secret("k"), ports: {}, certificateStarts: pki.caValidityStarts });
  const etcd = new EtcdCluster("etcd", {
    hosts,
    members,
    ca: pki.etcdCa,
    algorithm: pki.algorithm,
    etcd: { version: "3.5.21", source: "download", downloadUrl: "https://example.com/{version}/{arch}.tgz", dataDir: "/var/lib/etcd", heartbeatIntervalMs: 100, electionTimeoutMs: 1000, deployment: "systemd" },
    clusterName: "t",
  });
  expect(etcd.endpoints).toEqual(["https://10.0.0.2:2379", "https://10.0.0.1:2379", "https://10.0.0.3:2379"]);
  const [caPem, certPem, keyPem] = await Promise.all([valueOf(etcd.caCertPem), valueOf(etcd.apiserverClientCertPem), valueOf(etcd.apiserverClientKeyPem)]);
  expect(caPem).toBe(await valueOf(pki.etcdCa.certPem));
  const cert = new X509Certificate(certPem);
  expect(cert.subject).toBe("CN=kube-apiserver-etcd-client");
  expect(cert.verify(new X509Certificate(caPem).publicKey)).toBe(true);
  expect(keyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
  expect(await pulumi.isSecret(etcd.apiserverClientKeyPem)).toBe(true);
  expect(await pulumi.isSecret(etcd.apiserverClientCertPem)).toBe(false);
  expect(pulumi.CustomResource.isInstance(etcd.healthGate)).toBe(true);
  expect(Object.keys(etcd.memberSteps)).toEqual(["b", "a", "c"]);
  // children are parented to the component (the URN carries the parent's type)
  expect(await valueOf(etcd.memberSteps.a.urn)).toMatch(/::hakube:etcd:EtcdCluster\$command:remote:Command::etcd-member-a$/);
  expect(await valueOf((etcd.healthGate as pulumi.CustomResource).urn)).toMatch(/::hakube:etcd:EtcdCluster\$command:remote:Command::etcd-health-b$/);
  expect(await valueOf(etcd.urn)).toMatch(/::hakube:etcd:EtcdCluster::etcd$/);
  await settle();
  // the gate runs on the first member in host order
  expect(harness.commands().filter((c) => c.name.startsWith("etcd-health-")).map((c) => c.name)).toEqual(["etcd-health-b"]);
  // preflights checked the clock against every certificate the member's etcd verifies
  const preflight = harness.commands().find((c) => c.name === "hosts-preflight-a")!.inputs.create as string;
  const starts = /for start in ([^;\n]*)/.exec(preflight)![1].trim().split(/\s+/);
  const start = (n: string) => harness.registrations.find((r) => r.name === n)!.outputs.validityStartTime as string;
  for (const n of ["etcd-server-a-cert", "etcd-peer-a-cert", "etcd-healthcheck-client-cert", "etcd-apiserver-etcd-client-cert", "pki-etcd-ca-cert"])
    expect(starts).toContain(start(n));
});
