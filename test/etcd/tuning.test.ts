/**
 * etcd raft tuning as a stack setting (`etcd.heartbeatIntervalMs`, `etcd.electionTimeoutMs`):
 * the default chosen from the failover benchmark (docs/etcd.md "Leader failover"), validation
 * with key paths, the rendered member config, and that a change reaches every member through
 * its content stamp (the member steps' rolling restart, one at a time).
 */
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { parseClusterSpec, type RawConfig } from "../../components/config/spec";
import { memberConfig, renderConfig } from "../../components/etcd/render";
import { haHosts } from "../harness/fixtures";
import type { ResourceState } from "../harness/mocks";
import { readStackFile, runProgram, TEST_SSH_KEY, type StackConfig } from "../harness/program";

const raw = (etcd: unknown): RawConfig => ({
  stackName: "t",
  values: { sshPrivateKey: "k", hosts: JSON.stringify(haHosts()), loadBalancer: JSON.stringify({ vip: "10.0.0.100" }), ...(etcd === undefined ? {} : { etcd: JSON.stringify(etcd) }) },
  secretKeys: new Set(["sshPrivateKey"]),
});
/** The problem lines of a rejected config ("" when it parsed). */
function problems(etcd: unknown): string[] {
  try {
    parseClusterSpec(raw(etcd));
    return [];
  } catch (e) {
    return (e as Error).message
      .split("\n")
      .slice(1)
      .map((l) => l.replace(/^\s*- /, ""));
  }
}

describe("config: hakube:etcd.heartbeatIntervalMs / electionTimeoutMs", () => {
  test("default: etcd's own 100 ms / 1000 ms (the benchmark's choice: ≤ 3 s without a write after a leader crash)", () => {
    const { spec } = parseClusterSpec(raw(undefined));
    expect(spec.etcd.heartbeatIntervalMs).toBe(100);
    expect(spec.etcd.electionTimeoutMs).toBe(1000);
  });

  test("accepted: integers (also as CLI strings) with election ≥ 5 × heartbeat, a multiple of it", () => {
    expect(parseClusterSpec(raw({ heartbeatIntervalMs: 250, electionTimeoutMs: 2500 })).spec.etcd).toMatchObject({ heartbeatIntervalMs: 250, electionTimeoutMs: 2500 });
    expect(parseClusterSpec(raw({ heartbeatIntervalMs: "150", electionTimeoutMs: "750" })).spec.etcd).toMatchObject({ heartbeatIntervalMs: 150, electionTimeoutMs: 750 });
    expect(parseClusterSpec(raw({ electionTimeoutMs: 1500 })).spec.etcd).toMatchObject({ heartbeatIntervalMs: 100, electionTimeoutMs: 1500 });
  });

  test.each([
    [{ heartbeatIntervalMs: 100, electionTimeoutMs: 400 }, "hakube:etcd.electionTimeoutMs: 400 is less than 5 × heartbeatIntervalMs (100): etcd refuses to start; use ≥ 500"],
    [{ heartbeatIntervalMs: 500 }, "hakube:etcd.electionTimeoutMs: 1000 is less than 5 × heartbeatIntervalMs (500)"],
    [{ heartbeatIntervalMs: 200, electionTimeoutMs: 1500 }, "hakube:etcd.electionTimeoutMs: 1500 is not a multiple of heartbeatIntervalMs (200): etcd counts it in heartbeats and would use 1400 ms"],
    [{ heartbeatIntervalMs: 5 }, "hakube:etcd.heartbeatIntervalMs: 5 is out of range 10–5000"],
    [{ heartbeatIntervalMs: 6000, electionTimeoutMs: 60000 }, "hakube:etcd.heartbeatIntervalMs: 6000 is out of range 10–5000"],
    [{ electionTimeoutMs: 60000 }, "hakube:etcd.electionTimeoutMs: 60000 is out of range 50–50000"],
    [{ heartbeatIntervalMs: 1.5 }, "hakube:etcd.heartbeatIntervalMs: expected an integer, got 1.5"],
    [{ electionTimeoutMs: "2s" }, 'hakube:etcd.electionTimeoutMs: expected an integer, got "2s"'],
    [{ heartbeatInterval: 100 }, 'hakube:etcd.heartbeatInterval: unknown key (did you mean "heartbeatIntervalMs"?)'],
    [{ electionTimeout: 1000 }, 'hakube:etcd.electionTimeout: unknown key (did you mean "electionTimeoutMs"?)'],
  ])("refused: %j", (etcd, message) => {
    const lines = problems(etcd);
    expect(lines.some((l) => l.startsWith(message)), `"${message}" in:\n${lines.join("\n")}`).toBe(true);
  });

  test("every problem at once, each by key path", () => {
    const lines = problems({ heartbeatIntervalMs: 0, electionTimeoutMs: 99999, dataDir: "var/lib/etcd" });
    expect(lines.filter((l) => l.startsWith("hakube:etcd.heartbeatIntervalMs: 0 is out of range"))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith("hakube:etcd.electionTimeoutMs: 99999 is out of range"))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith("hakube:etcd.dataDir:"))).toHaveLength(1);
  });

  test("the program fails before registering anything", async () => {
    const r = await runProgram({ sshPrivateKey: TEST_SSH_KEY, hosts: haHosts(), loadBalancer: { vip: "10.0.0.100" }, etcd: { heartbeatIntervalMs: 300, electionTimeoutMs: 1000 } });
    expect(r.error?.message).toMatch(/hakube:etcd\.electionTimeoutMs: 1000 is less than 5 × heartbeatIntervalMs \(300\)/);
    expect(r.harness.registrations).toEqual([]);
  });
});

describe("render: the member config carries the tuning", () => {
  const members = [
    { name: "etcd1", internalAddress: "10.0.0.21" },
    { name: "etcd2", internalAddress: "10.0.0.22" },
    { name: "etcd3", internalAddress: "10.0.0.23" },
  ];
  const input = { member: members[0], members, clusterName: "prod", dataDir: "/var/lib/etcd" };

  test("default 100/1000; a given tuning is written as etcd's heartbeat-interval / election-timeout (numbers, ms)", () => {
    expect(memberConfig(input)).toMatchObject({ "heartbeat-interval": 100, "election-timeout": 1000 });
    const cfg = parse(renderConfig({ ...input, tuning: { heartbeatIntervalMs: 200, electionTimeoutMs: 3000 } }));
    expect(cfg["heartbeat-interval"]).toBe(200);
    expect(cfg["election-timeout"]).toBe(3000);
  });
});

describe("component: a tuning change reaches every member's config and stamp", async () => {
  const DEV: StackConfig = { ...readStackFile("Pulumi.dev.yaml"), "hakube:sshPrivateKey": TEST_SSH_KEY };
  const ETCD = ["etcd1", "etcd2", "etcd3"];
  const state: ResourceState = new Map();
  const run = async (etcd: Record<string, unknown>) => {
    const r = await runProgram({ ...DEV, "hakube:etcd": { ...(DEV["hakube:etcd"] as object), ...etcd } }, { state });
    if (r.error) throw r.error;
    return (n: string) => r.harness.commands().find((c) => c.name === n)!.inputs;
  };
  const a = await run({});
  const b = await run({ heartbeatIntervalMs: 200, electionTimeoutMs: 2000 });

  test("the staged etcd.conf.yml of every member says 200/2000; the default run says 100/1000", () => {
    for (const h of ETCD) {
      expect(b(`etcd-member-${h}`).create).toMatch(/^heartbeat-interval: 200$/m);
      expect(b(`etcd-member-${h}`).create).toMatch(/^election-timeout: 2000$/m);
      expect(a(`etcd-member-${h}`).create).toMatch(/^heartbeat-interval: 100$/m);
      expect(a(`etcd-member-${h}`).create).toMatch(/^election-timeout: 1000$/m);
    }
  });

  test("every member's content stamp changes (→ the rolling restart, one member at a time); installs unchanged; the gate runs again", () => {
    const stamp = (s: string) => /^# content stamp ([0-9a-f]{64})$/m.exec(s)?.[1];
    for (const h of ETCD) {
      expect(stamp(a(`etcd-member-${h}`).create)).toBeDefined();
      expect(stamp(b(`etcd-member-${h}`).create)).not.toBe(stamp(a(`etcd-member-${h}`).create));
      expect(b(`etcd-install-${h}`).create).toBe(a(`etcd-install-${h}`).create);
    }
    expect(b("etcd-health-etcd1").create).not.toBe(a("etcd-health-etcd1").create);
  });
});
