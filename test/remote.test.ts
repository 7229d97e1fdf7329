/**
 * Remote primitives: quoting, the script wrapper (run for real under sh and bash), atomic and
 * idempotent file installation, secrets on stdin, failure messages, the preflight script.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { renderPreflight } from "../components/remote/preflight";
import { encodeStdin, heredocDelimiter, putFile, putFileFromStdin, renderParts, renderScript, shq, wrapScript } from "../components/remote/shell";

const run = (command: string, stdin = "", env: Record<string, string> = {}) =>
  spawnSync("sh", ["-c", command], { input: stdin, encoding: "utf8", env: { ...process.env, ...env } });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "hakube-remote-"));

describe("shq", () => {
  const nasty = ["", "plain", "it's", "a b", "$HOME", "`id`", '"q"', "back\\slash", "new\nline", "*?[]", "-n", "ünïcödé", "'; rm -rf / #"];
  it("round-trips any string through bash", () => {
    for (const s of nasty) {
      const out = execFileSync("bash", ["-c", `printf '%s' ${shq(s)}`], { encoding: "utf8" });
      expect(out).toBe(s);
    }
  });
  it("leaves safe words bare", () => expect(shq("/etc/etcd/etcd.conf.yml")).toBe("/etc/etcd/etcd.conf.yml"));
  it("refuses NUL", () => expect(() => shq("a\0b")).toThrow());
});

describe("wrapScript", () => {
  it("runs the body verbatim under sh as login shell, with stdin free", () => {
    const body = `echo "args:$0"; read -r line; echo "stdin:$line"; echo '$HOME stays literal'`;
    const r = run(wrapScript({ host: "h1", step: "demo", user: "root", body }), "payload\n");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("args:hakube-demo\nstdin:payload\n$HOME stays literal\n");
  });

  it("fails with 'hakube: <host>: <step>: <reason>' for hakube_fail and for any failing command", () => {
    const a = run(wrapScript({ host: "cp1", step: "join", user: "root", body: `hakube_fail "token expired"` }));
    expect(a.status).toBe(1);
    expect(a.stderr.trim()).toBe("hakube: cp1: join: token expired");
    const b = run(wrapScript({ host: "cp1", step: "join", user: "root", body: `echo before\nls /definitely/not/here\necho after` }));
    expect(b.status).not.toBe(0);
    expect(b.stdout).toBe("before\n");
    expect(b.stderr).toMatch(/^hakube: cp1: join: line \d+: `ls \/definitely\/not\/here` failed \(exit 2\)$/m);
    const c = run(wrapScript({ host: "cp1", step: "pipe", user: "root", body: `false | cat\necho unreachable` }));
    expect(c.status).not.toBe(0);
    expect(c.stdout).not.toContain("unreachable");
  });

  it("runs through sudo -n for non-root users", () => {
    const t = wrapScript({ host: "h", step: "s", user: "admin", body: "true" });
    expect(t).toMatch(/^exec sudo -n -- bash --norc --noprofile -c /m);
    expect(wrapScript({ host: "h", step: "s", user: "root", body: "true" })).toMatch(/^exec bash --norc --noprofile -c /m);
  });

  it("carries only the helpers the body uses", () => {
    expect(renderScript({ host: "h", step: "s", body: "echo hi" })).not.toContain("hakube_put()");
    const s = renderScript({ host: "h", step: "s", body: putFileFromStdin({ path: "/x", index: 0 }) });
    expect(s).toContain("hakube_put_stdin()");
    expect(s).toContain("hakube_put()"); // used by hakube_put_stdin
    expect(s).not.toContain("hakube_apt_install()");
  });

  it("survives a body that contains the heredoc delimiter", () => {
    const body = `cat <<'X'\nHAKUBE_SCRIPT\nX`;
    const r = run(wrapScript({ host: "h", step: "s", user: "root", body }));
    expect(r.stdout).toBe("HAKUBE_SCRIPT\n");
    expect(heredocDelimiter("a\nHAKUBE_SCRIPT\nHAKUBE_SCRIPT_1\n", "HAKUBE_SCRIPT")).toBe("HAKUBE_SCRIPT_2");
  });

  it("refuses scripts beyond the argument limit", () => {
    expect(() => wrapScript({ host: "h", step: "big", user: "root", body: "#".repeat(200_000) })).toThrow(/hakube: h: big: script is/);
  });
});

describe("renderParts (several steps' bodies as one step)", () => {
  const step = (body: string) => wrapScript({ host: "w1", step: "prepare", user: "root", body });
  it("runs the parts in order; each keeps its own variables, EXIT trap and changed files", () => {
    const d = tmp();
    const body = renderParts([
      { label: "one", body: `v=one\ntmpd=$(mktemp -d)\ntrap 'rm -rf "$tmpd"; echo "cleaned one"' EXIT\nhakube_put ${d}/a 0644 root root <<<"x"\nif hakube_changed; then echo "one changed"; fi` },
      { label: "two", body: `echo "two sees v=\${v:-unset}"\nhakube_changed && echo "two changed" || echo "two unchanged"\nhakube_put ${d}/b 0644 root root <<<"y"` },
    ]) + `echo "after: \${#HAKUBE_CHANGED[@]} recorded by the step itself"`;
    const r = run(step(body));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`changed ${d}/a\none changed\ncleaned one\ntwo sees v=unset\ntwo unchanged\nchanged ${d}/b\nafter: 0 recorded by the step itself\n`);
    expect(fs.readFileSync(path.join(d, "a"), "utf8")).toBe("x\n");
    expect(fs.readFileSync(path.join(d, "b"), "utf8")).toBe("y\n");
  });
  it("a failing part ends the step with one message naming the part; later parts do not run", () => {
    for (const failing of [`hakube_fail "no cgroup v2"`, `false`]) {
      const r = run(step(renderParts([{ label: "system", body: `echo start\n${failing}\necho "not reached"` }, { label: "packages", body: "echo second" }]) + "echo end"));
      expect(r.status, failing).toBe(1);
      expect(r.stdout, failing).toBe("start\n");
      const lines = r.stderr.trim().split("\n");
      expect(lines, failing).toHaveLength(1);
      expect(lines[0], failing).toMatch(failing === "false" ? /^hakube: w1: prepare \(system\): line \d+: `false` failed \(exit 1\)$/ : /^hakube: w1: prepare \(system\): no cgroup v2$/);
    }
  });
  it("after the parts, a failing command fails the step again with the step's own name", () => {
    const r = run(step(renderParts([{ label: "one", body: "true" }]) + "false"));
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^hakube: w1: prepare: line \d+: `false` failed/);
  });
});

describe("file installation", () => {
  it("installs inline and secret files atomically, with mode and owner, and a re-run changes nothing", () => {
    const d = tmp();
    const content = "a: 'quoted'\nb: $NOT_EXPANDED `nor this`\nHAKUBE_FILE\n";
    const key = "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n";
    const body = [
      putFile({ path: `${d}/conf/app.yaml`, mode: "0644", content }),
      putFileFromStdin({ path: `${d}/pki/app.key`, index: 0 }),
      putFileFromStdin({ path: `${d}/pki/other.key`, index: 1, mode: "0640" }),
      `hakube_changed && echo RESTART || echo NOOP`,
    ].join("\n");
    const cmd = wrapScript({ host: "h", step: "files", user: "root", body, stdinItems: 2 });
    expect(cmd).not.toContain("SECRET");
    const stdin = encodeStdin([key, "second"]);
    const first = run(cmd, stdin);
    expect(first.stderr).toBe("");
    expect(first.stdout).toContain("RESTART");
    expect(fs.readFileSync(`${d}/conf/app.yaml`, "utf8")).toBe(content);
    expect(fs.readFileSync(`${d}/pki/app.key`, "utf8")).toBe(key);
    expect(fs.statSync(`${d}/pki/app.key`).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${d}/pki/other.key`).mode & 0o777).toBe(0o640);
    expect(fs.statSync(`${d}/conf/app.yaml`).mode & 0o777).toBe(0o644);
    const mtime = fs.statSync(`${d}/pki/app.key`).mtimeMs;
    const second = run(cmd, stdin);
    expect(second.status).toBe(0);
    expect(second.stdout).toBe("NOOP\n");
    expect(fs.statSync(`${d}/pki/app.key`).mtimeMs).toBe(mtime);
    expect(fs.readdirSync(`${d}/pki`).sort()).toEqual(["app.key", "other.key"]); // no temp files left
    // a changed mode alone is a change
    fs.chmodSync(`${d}/conf/app.yaml`, 0o666);
    expect(run(cmd, stdin).stdout).toContain(`changed ${d}/conf/app.yaml`);
    expect(fs.statSync(`${d}/conf/app.yaml`).mode & 0o777).toBe(0o644);
  });

  it("fails naming the step when the secret payload is missing", () => {
    const cmd = wrapScript({ host: "etcd1", step: "certs", user: "root", body: putFileFromStdin({ path: "/tmp/never", index: 0 }), stdinItems: 1 });
    const r = run(cmd, "");
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe("hakube: etcd1: certs: expected 1 secret payload(s) on stdin, got 0");
  });

  it("hakube_dir creates and fixes directories idempotently", () => {
    const d = tmp();
    const cmd = wrapScript({ host: "h", step: "dirs", user: "root", body: `hakube_dir ${d}/x 0700 root root\nhakube_changed && echo CHANGED || echo SAME` });
    expect(run(cmd).stdout).toContain("CHANGED");
    expect(fs.statSync(`${d}/x`).mode & 0o777).toBe(0o700);
    expect(run(cmd).stdout).toBe("SAME\n");
    fs.chmodSync(`${d}/x`, 0o755);
    expect(run(cmd).stdout).toContain("CHANGED");
  });
});

describe("preflight", () => {
  const script = (starts: string[], ports = [{ port: 1, what: "x", owners: ["nobody"] }]) =>
    wrapScript({ host: "cp1", step: "preflight", user: "root", body: renderPreflight({ host: "cp1", roles: ["controlplane"], ports, certificateStarts: starts }) });

  it("holds no current time: the text depends only on its inputs", () => {
    expect(script(["2026-01-01T00:00:00Z"])).toBe(script(["2026-01-01T00:00:00Z"]));
    expect(script(["2026-01-01T00:00:00Z"])).not.toMatch(new RegExp(new Date().toISOString().slice(0, 13)));
  });

  it("lists every problem in one message naming host and step", () => {
    const r = run(script(["2099-01-01T00:00:00Z"]), "", {});
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^hakube: cp1: preflight: \d+ problem\(s\); /);
    expect(lines[0]).toMatch(/clock is \d+ s behind the certificates issued for this host \(valid from 2099-01-01T00:00:00Z/);
    if (!fs.existsSync("/run/systemd/system")) expect(lines[0]).toContain("systemd is not running");
  });

  it("names a port held by a foreign process, accepts our own", async () => {
    const { createServer } = await import("node:net");
    const srv = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => srv.once("listening", r));
    const port = (srv.address() as { port: number }).port;
    try {
      const foreign = run(script([], [{ port, what: "kube-apiserver", owners: ["kube-apiserver"] }]));
      expect(foreign.stderr).toMatch(new RegExp(`port ${port} \\(kube-apiserver\\) is in use by (node|an unknown process)`));
      const own = run(script([], [{ port, what: "test", owners: ["node"] }]));
      expect(own.stderr).not.toContain(`port ${port}`);
    } finally {
      srv.close();
    }
  });

  it("waits out a small clock lag instead of failing", () => {
    const soon = new Date(Date.now() + 2000).toISOString().replace(/\.\d+Z$/, "Z");
    const r = run(script([soon]));
    expect(r.stdout).toMatch(/clock is \d s behind certificate start .*: waiting/);
    expect(r.stderr).not.toContain("clock is");
  });
});
