/**
 * Test fixtures and helpers: stack configs, the secret payloads a command
 * receives on stdin, the inner bash script of a command, dependency closure, and every secret
 * value a recorded program holds.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TOKENS, type Harness, type Registration } from "./mocks";
import { TEST_SSH_KEY, type StackConfig } from "./program";

export type Host = Record<string, unknown>;
export const host = (name: string, ip: string, roles: string[], extra: Host = {}): Host => ({ name, address: ip, roles, ...extra });

/** Full HA: 2 LBs, 3 etcd, 3 control planes, 2 workers on 10.0.0.0/24. */
export function haHosts(): Host[] {
  return [
    host("lb1", "10.0.0.11", ["loadbalancer"]),
    host("lb2", "10.0.0.12", ["loadbalancer"]),
    host("etcd1", "10.0.0.21", ["etcd"]),
    host("etcd2", "10.0.0.22", ["etcd"]),
    host("etcd3", "10.0.0.23", ["etcd"]),
    host("cp1", "10.0.0.31", ["controlplane"]),
    host("cp2", "10.0.0.32", ["controlplane"]),
    host("cp3", "10.0.0.33", ["controlplane"]),
    host("w1", "10.0.0.41", ["worker"]),
    host("w2", "10.0.0.42", ["worker"]),
  ];
}

/** The HA shape with a DNS-addressed load balancer, a zone label and a labelled, tainted GPU worker. */
export function haConfig(over: StackConfig = {}): StackConfig {
  const hosts = haHosts();
  hosts[0] = { ...hosts[0], address: "lb1.example.com", internalAddress: "10.0.0.11" };
  hosts[7] = { ...hosts[7], labels: { "topology.kubernetes.io/zone": "b" } };
  hosts[9] = host("gpu1", "10.0.0.42", ["worker"], {
    labels: { "example.com/gpu": "a100", "node.kubernetes.io/pool": "gpu" },
    taints: ["nvidia.com/gpu=true:NoSchedule", "example.com/maintenance:NoExecute"],
  });
  return { sshPrivateKey: TEST_SSH_KEY, clusterName: "prod", hosts, loadBalancer: { vip: "10.0.0.100", port: 6443 }, ...over };
}

/** The secret payloads of a command (its stdin: one base64 line each). */
export function stdinItems(reg: Registration): string[] {
  const stdin: string | undefined = reg.inputs.stdin;
  if (!stdin) return [];
  return stdin
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => Buffer.from(l, "base64").toString("utf8"));
}

/** The bash script inside a command text (`exec bash -c "$(cat <<'HAKUBE_SCRIPT' … HAKUBE_SCRIPT)"`). */
export function innerScript(commandText: string): string {
  const m = /<<'(HAKUBE_SCRIPT(?:_\d+)?)'\n([\s\S]*?)\n\1\n/.exec(commandText);
  if (!m) throw new Error(`no script in command text:\n${commandText.slice(0, 200)}`);
  return m[2] + "\n";
}

/** `bash -n` on a script; returns the error text ("" when fine). */
export function bashSyntax(script: string): string {
  try {
    execFileSync("bash", ["-n"], { input: script, stdio: ["pipe", "pipe", "pipe"] });
    return "";
  } catch (e) {
    return String((e as { stderr?: Buffer }).stderr ?? e);
  }
}

let shellcheckPath: string | null | undefined;
/** shellcheck warnings (severity warning and up), or undefined when shellcheck is not installed. */
export function shellcheck(script: string): string | undefined {
  if (shellcheckPath === undefined) {
    try {
      shellcheckPath = execFileSync("bash", ["-c", "command -v shellcheck"], { encoding: "utf8" }).trim() || null;
    } catch {
      shellcheckPath = null;
    }
  }
  if (!shellcheckPath) return undefined;
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hakube-sc-")), "s.sh");
  fs.writeFileSync(f, script);
  try {
    // SC2034: variables used by helpers only; SC2317: helper functions reached through hakube_retry;
    // SC2194/SC2043: constant words and one-item loops are what rendering plain values gives
    execFileSync(shellcheckPath, ["-s", "bash", "-S", "warning", "-e", "SC2034,SC2317,SC2194,SC2043", f], { encoding: "utf8" });
    return "";
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? e);
  }
}

/** Every resource `name` depends on, directly or through others (by name). */
export function dependencyClosure(h: Harness, name: string): Set<string> {
  const byName = new Map(h.registrations.map((r) => [r.name, r]));
  const out = new Set<string>();
  const visit = (n: string) => {
    for (const d of byName.get(n)?.dependencies ?? []) {
      if (!out.has(d)) {
        out.add(d);
        visit(d);
      }
    }
  };
  visit(name);
  return out;
}

export function command(h: Harness, name: string): Registration {
  const r = h.commands().find((c) => c.name === name);
  if (!r) throw new Error(`no command ${name}; have: ${h.commands().map((c) => c.name).join(", ")}`);
  return r;
}

/** Every secret value the recorded program holds: private keys, the bootstrap token (and its secret half), the SSH key. */
export function secretValues(h: Harness): string[] {
  const out = new Set<string>([TEST_SSH_KEY.trim()]);
  for (const k of h.ofType(TOKENS.privateKey)) {
    for (const pem of [k.outputs.privateKeyPem, k.outputs.privateKeyPemPkcs8] as string[]) {
      out.add(pem.trim());
      // the base64 body alone, joined and line by line (a key could leak without its PEM armour)
      const body = pem.split("\n").filter((l) => l && !l.startsWith("-----"));
      out.add(body.join(""));
      for (const line of body) if (line.length > 40) out.add(line);
    }
  }
  const strings = h.ofType(TOKENS.randomString);
  const id = strings.find((s) => s.name.endsWith("bootstrap-token-id"))?.outputs.result;
  const secret = strings.find((s) => s.name.endsWith("bootstrap-token-secret"))?.outputs.result;
  if (secret) {
    out.add(secret);
    out.add(`${id}.${secret}`);
  }
  return [...out].filter((s) => s.length >= 16);
}
