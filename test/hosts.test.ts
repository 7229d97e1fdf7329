/** `Hosts`: preflight first in every chain, certificates recorded during construction reach it. */
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, expect, it } from "vitest";
import type { HostSpec } from "../components/config/spec";
import { createHarness, type Harness } from "./harness/mocks";
import { settle } from "./harness/program";

let harness: Harness;
beforeAll(async () => {
  harness = createHarness();
  await pulumi.runtime.setMocks(harness.mocks, "hakube", "dev");
  harness.attach();
});

const host = (name: string): HostSpec => ({ name, address: `10.0.0.${name.length}`, internalAddress: `10.0.0.${name.length}`, roles: ["etcd", "controlplane"], user: "root", port: 22, labels: {}, taints: [] });

it("a certificate recorded after the host's first step still reaches its preflight; a late one throws", async () => {
  const { Hosts } = await import("../components/remote");
  const hosts = new Hosts("hosts", { hosts: [host("a1")], sshPrivateKey: pulumi.secret("KEY"), ports: {}, certificateStarts: ["2026-01-01T00:00:00Z"] });
  const parent = new pulumi.ComponentResource("test:x:Y", "comp");
  hosts.step(parent, "comp", { host: host("a1"), step: "first", script: "true" });
  hosts.certificateIssued(host("a1"), "2031-02-03T04:05:06Z"); // after the first step: still in time
  await new Promise((r) => setImmediate(r));
  expect(() => hosts.certificateIssued(host("a1"), "2032-01-01T00:00:00Z")).toThrow(/recorded after the preflights read them/);
  await settle();
  const pre = harness.commands().find((c) => c.name === "hosts-preflight-a1")!;
  expect(pre.inputs.create).toContain("for start in 2026-01-01T00:00:00Z 2031-02-03T04:05:06Z; do");
  const first = harness.commands().find((c) => c.name === "comp-first-a1")!;
  expect(first.dependencies).toContain("hosts-preflight-a1");
  expect(() => hosts.step(parent, "comp", { host: host("a1"), step: "first", script: "true" })).toThrow(/duplicate step comp-first-a1/);
});
