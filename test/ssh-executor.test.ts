/** The realizing harness's SSH executor against an in-process SSH server. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wrapScript, encodeStdin, putFileFromStdin } from "../components/remote/shell";
import { generateClientKey, startFakeSshd, type FakeSshd } from "./harness/fake-sshd";
import { splitName, sshExecutor } from "./harness/ssh";

let sshd: FakeSshd;
let key: string;
beforeAll(async () => {
  key = generateClientKey();
  sshd = await startFakeSshd(key);
});
afterAll(() => sshd.close());

const inputs = (create: string, extra: Record<string, unknown> = {}, conn: Record<string, unknown> = {}) => ({
  create,
  connection: { host: "127.0.0.1", port: sshd.port, user: "root", privateKey: key, ...conn },
  ...extra,
});

describe("ssh executor", () => {
  it("runs the command with stdin and returns stdout/stderr", async () => {
    const x = sshExecutor(["h1"]);
    const r = await x.executor({ name: "etcd-config-h1", inputs: inputs(`read -r a; echo "got $a"; echo warn >&2`, { stdin: "payload\n" }) });
    expect(r).toEqual({ stdout: "got payload", stderr: "warn" });
    expect(x.executions[0]).toMatchObject({ host: "h1", component: "etcd", step: "config", skipped: false, exitCode: 0 });
    expect(x.executions[0].endMs).toBeGreaterThanOrEqual(x.executions[0].startMs);
  });

  it("fails with host, step and the script's message", async () => {
    const x = sshExecutor(["etcd1"]);
    const cmd = wrapScript({ host: "etcd1", step: "certs", user: "root", body: putFileFromStdin({ path: "/nonexistent-dir/x/y.key", index: 0 }) + "\nhakube_fail boom", stdinItems: 1 });
    await expect(x.executor({ name: "etcd-certs-etcd1", inputs: inputs(cmd, { stdin: encodeStdin(["k"]) }) })).rejects.toThrow(/etcd-certs-etcd1 on etcd1: Process exited with status 1: hakube: etcd1: certs:/);
  });

  it("verifies the host key when given", async () => {
    const x = sshExecutor(["h"]);
    await expect(x.executor({ name: "a-b-h", inputs: inputs("echo ok", {}, { hostKey: sshd.hostKeyLine }) })).resolves.toEqual({ stdout: "ok", stderr: "" });
    const other = (await startFakeSshd(key));
    try {
      await expect(x.executor({ name: "a-c-h", inputs: inputs("echo never", {}, { hostKey: other.hostKeyLine }) })).rejects.toThrow(/a-c-h on h:/);
    } finally {
      await other.close();
    }
    expect(sshd.commands).not.toContain("echo never");
  });

  it("skips unselected commands and limits per-host concurrency", async () => {
    const x = sshExecutor(["h"], { select: (n) => !n.startsWith("cp-"), perHostConcurrency: 2 });
    expect(await x.executor({ name: "cp-init-h", inputs: inputs("exit 1") })).toEqual({ stdout: "", stderr: "" });
    expect(x.executions[0].skipped).toBe(true);
    const t = Date.now();
    await Promise.all([1, 2, 3, 4].map((i) => x.executor({ name: `lb-s${i}-h`, inputs: inputs("sleep 0.5") })));
    expect(Date.now() - t).toBeGreaterThanOrEqual(950); // 4 commands, 2 at a time
  });

  it("times out instead of hanging", async () => {
    const x = sshExecutor(["h"], { timeoutMs: 500 });
    await expect(x.executor({ name: "a-slow-h", inputs: inputs("sleep 5") })).rejects.toThrow(/timed out after 500 ms/);
  });

  it("splits names by the longest matching host", () => {
    expect(splitName("etcd-restart-etcd-a1", ["a1", "etcd-a1"])).toEqual({ component: "etcd", step: "restart", host: "etcd-a1" });
    expect(splitName("hosts-preflight-lb1", ["lb1"])).toEqual({ component: "hosts", step: "preflight", host: "lb1" });
  });
});
