/**
 * What the end-to-end suite checks on the hosts, from outside (over SSH): managed files and
 * service processes (for idempotency), secrets left behind, validators, keepalived's state.
 */
import { TOKENS, type Registration } from "../harness/mocks";
import { sshExec, type Execution, type SshTarget } from "../harness/ssh";
import { now, onHost, onHostOk } from "./labctl";

/** Everything hakube manages on a host (files are compared by content, mode, owner, inode, mtime). */
export const MANAGED_PATHS = [
  "/etc/etcd",
  "/etc/haproxy",
  "/etc/nginx",
  "/etc/keepalived",
  "/etc/systemd/system",
  "/etc/kubernetes",
  "/etc/default/etcd",
  "/var/lib/hakube",
  "/usr/sbin/policy-rc.d",
];
export const SERVICES = ["etcd", "haproxy", "nginx", "keepalived"];

/**
 * One text per host: every managed file (type, path, mode, owner, inode, mtime, sha256) and every
 * service's main process, start time, restart count and child processes (HAProxy's and Nginx's
 * workers: a reload replaces them), plus the journal cursor (to look for unit events after it).
 */
export const SNAPSHOT_SCRIPT = `set -u
export LC_ALL=C
for p in ${MANAGED_PATHS.join(" ")}; do
  [ -e "$p" ] || continue
  find "$p" -xdev \\( -type d -printf 'd %p %m %u:%g\\n' \\) -o \\( -type l -printf 'l %p -> %l\\n' \\) \\
    -o \\( -type f -printf 'f %p %m %u:%g i%i t%T@ ' -exec sha256sum {} \\; \\)
done | sort
for s in ${SERVICES.join(" ")}; do
  systemctl show "$s" -p ActiveState,MainPID,ActiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic,NRestarts 2>/dev/null | sort | tr '\\n' ' ' | sed "s/^/svc $s /"
  pid=$(systemctl show "$s" -p MainPID --value 2>/dev/null || echo 0)
  # long-lived children only: the service's own binary (workers, keepalived's VRRP process), seen in
  # two samples 1 s apart — not a check script keepalived forks every few seconds
  if [ "\${pid:-0}" != 0 ]; then
    exe=$(ps -o comm= -p "$pid" 2>/dev/null)
    kids() { local c; for c in $(pgrep -P "$pid"); do [ "$(ps -o comm= -p "$c" 2>/dev/null)" = "$exe" ] && echo "$c"; done | sort; }
    a=$(kids); sleep 1; b=$(kids)
    echo "children $(comm -12 <(echo "$a") <(echo "$b") | sort -n | tr '\\n' ' ')"
  else echo; fi
done
echo "cursor $(journalctl -n 1 --show-cursor -q -o cat --no-pager 2>/dev/null | sed -n 's/^-- cursor: //p')"
`;

/** The host's journal cursor now (to read only what comes after). */
export async function journalCursor(t: SshTarget): Promise<string> {
  return (await onHostOk(t, "journalctl -n 1 --show-cursor -q -o cat --no-pager | sed -n 's/^-- cursor: //p'")).trim();
}

export interface Snapshot {
  files: string[];
  services: string[];
  cursor: string;
}
export async function snapshot(t: SshTarget): Promise<Snapshot> {
  const out = await onHostOk(t, SNAPSHOT_SCRIPT);
  const lines = out.split("\n").filter(Boolean);
  return {
    files: lines.filter((l) => /^[dlf] /.test(l)),
    services: lines.filter((l) => l.startsWith("svc ") || l.startsWith("children")),
    cursor: (lines.find((l) => l.startsWith("cursor ")) ?? "").slice(7),
  };
}

/** Lines that differ between two snapshots (before → after). */
export function diffLines(before: string[], after: string[]): string[] {
  const a = new Set(before);
  const b = new Set(after);
  return [...before.filter((l) => !b.has(l)).map((l) => `- ${l}`), ...after.filter((l) => !a.has(l)).map((l) => `+ ${l}`)];
}

/** systemd's unit events (start/stop/reload/restart) for our services since a journal cursor. */
export async function unitEventsSince(t: SshTarget, cursor: string): Promise<string[]> {
  const units = SERVICES.map((s) => `-u ${s}`).join(" ");
  const out = await onHostOk(t, `journalctl --no-pager -o short-monotonic ${cursor ? `--after-cursor='${cursor}'` : ""} ${units} || true`);
  return out
    .split("\n")
    .filter((l) => /\b(Started|Starting|Stopping|Stopped|Reloading|Reloaded|Scheduled restart|Deactivated)\b/.test(l));
}

/** Lines a step prints when it changed something (hakube_put/remove, lb_apply, apt, etcd member). */
export const CHANGE_LINE = /^(changed|removed|installed|enabled|restarted|reloaded|started|stopped) /m;

export interface Rerun {
  name: string;
  host: string;
  exitCode: number | null;
  ms: number;
  stdout: string;
  stderr: string;
}
/** Run every executed command again, exactly as recorded (text + stdin), one at a time in the original order. */
export async function rerunAll(executions: Execution[]): Promise<Rerun[]> {
  const out: Rerun[] = [];
  for (const e of [...executions].filter((x) => !x.skipped).sort((a, b) => a.startMs - b.startMs)) {
    const t0 = now();
    const r = await sshExec(e.connection, e.command, e.stdin, 600_000);
    out.push({ name: e.name, host: e.host, exitCode: r.exitCode, ms: now() - t0, stdout: r.stdout, stderr: r.stderr });
  }
  return out;
}

// ---- secrets -------------------------------------------------------------------------------------

export interface Secrets {
  /** search strings (≥ 16 characters each): PEM body lines of every private key, token parts, the SSH key's lines */
  needles: string[];
  /** what each needle belongs to (for messages) */
  owner: Map<string, string>;
}

/** Every secret the run handled: each private key the harness made (PEM body lines), the bootstrap token, the SSH key. */
export function collectSecrets(registrations: Registration[], sshPrivateKey: string, token?: string): Secrets {
  const owner = new Map<string, string>();
  const add = (s: string | undefined, who: string) => {
    if (s && s.length >= 16 && !owner.has(s)) owner.set(s, who);
  };
  const bodyLines = (pem: string) => String(pem).split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"));
  for (const r of registrations.filter((x) => x.type === TOKENS.privateKey && x.outputs)) {
    // a private key's encoding carries its public key too (an EC key's last PEM line can be
    // nothing but public bytes, found again in the public key's PEM): such lines are not secret
    const pub = `${r.outputs.publicKeyPem ?? ""}\n${r.outputs.publicKeyOpenssh ?? ""}`.replace(/\n/g, "");
    for (const f of ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"])
      for (const l of bodyLines(r.outputs[f] ?? "")) if (!pub.includes(l)) add(l, `${r.name}.${f}`);
  }
  for (const r of registrations.filter((x) => x.type === TOKENS.randomString && x.outputs && /secret|password/.test(x.name))) add(r.outputs.result, r.name);
  add(token, "bootstrap token");
  // an OpenSSH key's first body line is the format header (the same for every key of a type)
  const sshLines = bodyLines(sshPrivateKey);
  for (const l of sshPrivateKey.includes("OPENSSH PRIVATE KEY") ? sshLines.slice(1) : sshLines) add(l, "SSH private key");
  return { needles: [...owner.keys()], owner };
}

/** Where private keys may live on a host: key files only, mode 0600. */
export const KEY_FILE = /^\/etc\/(etcd\/pki|kubernetes\/pki(\/etcd)?)\/[a-z0-9.-]+\.key$/;
export const SCAN_DIRS = ["/etc", "/var/lib", "/root", "/tmp", "/run", "/var/log", "/var/tmp", "/home", "/srv", "/opt"];

export interface SecretScan {
  host: string;
  /** files containing a secret, with their mode */
  files: { path: string; mode: string }[];
  /** every *.key file in the key directories with its mode */
  keyFiles: { path: string; mode: string }[];
  /** needles found in `journalctl -o json` */
  journalHits: string[];
  ms: number;
}

/**
 * On one host: which files under SCAN_DIRS contain any needle (fixed strings on grep's stdin: they
 * never touch the host's disk), the key files and their modes, and the needles found in the journal
 * (all fields, JSON).
 */
export async function scanHost(name: string, t: SshTarget, s: Secrets): Promise<SecretScan> {
  const t0 = now();
  const grep = await onHost(
    t,
    `grep -rlsF -D skip -f - ${SCAN_DIRS.join(" ")} 2>/dev/null | while read -r f; do printf '%s %s\\n' "$(stat -c %a "$f")" "$f"; done; true`,
    { stdin: s.needles.join("\n") + "\n", timeoutMs: 300_000 },
  );
  const files = grep.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => ({ mode: l.slice(0, l.indexOf(" ")), path: l.slice(l.indexOf(" ") + 1) }));
  const keys = await onHostOk(t, `find /etc/etcd/pki /etc/kubernetes/pki -name '*.key' -printf '%m %p\\n' 2>/dev/null || true`);
  const keyFiles = keys
    .split("\n")
    .filter(Boolean)
    .map((l) => ({ mode: l.slice(0, l.indexOf(" ")), path: l.slice(l.indexOf(" ") + 1) }));
  const journal = await onHost(t, "journalctl --no-pager -a -o json", { timeoutMs: 300_000 });
  const journalHits = s.needles.filter((n) => journal.stdout.includes(n)).map((n) => s.owner.get(n) ?? "?");
  return { host: name, files, keyFiles, journalHits, ms: now() - t0 };
}

// ---- load balancers ------------------------------------------------------------------------------

/** Each validator on the host's live files: exit code and output. */
export async function validators(t: SshTarget, engine: string): Promise<Record<string, { exitCode: number | null; output: string }>> {
  const cmds: Record<string, string> = {
    keepalived: "keepalived -t -f /etc/keepalived/keepalived.conf",
    ...(engine === "haproxy" ? { haproxy: "haproxy -c -f /etc/haproxy/haproxy.cfg" } : { nginx: "nginx -t -c /etc/nginx/nginx.conf" }),
  };
  const out: Record<string, { exitCode: number | null; output: string }> = {};
  for (const [k, c] of Object.entries(cmds)) {
    const r = await onHost(t, `${c} 2>&1`);
    out[k] = { exitCode: r.exitCode, output: r.stdout.trim() };
  }
  return out;
}

/** keepalived's last VRRP state (from its journal in this boot, after a cursor) and the rendered config's state/nopreempt lines. */
export async function keepalivedState(t: SshTarget, afterCursor?: string): Promise<{ state?: string; configState?: string; nopreempt: boolean; active: string }> {
  const out = await onHostOk(
    t,
    `echo "active $(systemctl is-active keepalived || true)"
journalctl -b -u keepalived -o cat --no-pager ${afterCursor ? `--after-cursor='${afterCursor}'` : ""} | grep -oE 'Entering (MASTER|BACKUP|FAULT) STATE' | tail -1 | sed 's/^/last /' || true
grep -E '^\\s*(state|nopreempt)\\b' /etc/keepalived/keepalived.conf | sed 's/^\\s*/conf /' || true`,
  );
  const last = /^last Entering (\w+) STATE/m.exec(out)?.[1];
  const configState = /^conf state (\w+)/m.exec(out)?.[1];
  return { ...(last ? { state: last } : {}), ...(configState ? { configState } : {}), nopreempt: /^conf nopreempt/m.test(out), active: /^active (\S+)/m.exec(out)?.[1] ?? "" };
}
