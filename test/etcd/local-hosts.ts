/**
 * Run the etcd component's rendered remote commands on this machine, one "host" per loopback
 * address, without systemd and without touching the machine's own /etc or /var/lib:
 *
 * - the command text is run with bash exactly as the program rendered it, after relocating the
 *   absolute paths of the etcd files into a per-host directory and dropping the
 *   `https://127.0.0.1:2379` client listener (three members cannot share it on one machine),
 *   and after the optional certificate substitutions (see `substitutions`);
 * - `systemctl` is a bash function (loaded through BASH_ENV, so the script's own PATH does not
 *   matter) that keeps one `etcd.service` per host: it starts the unit's ExecStart as the unit's
 *   User (setpriv), records every call and every PID it started.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

/** Why the real-etcd tests cannot run here, or undefined. */
export function realEtcdUnavailable(): string | undefined {
  const has = (c: string) => spawnSync("bash", ["-c", `command -v ${c}`]).status === 0;
  for (const c of ["etcd", "etcdctl", "openssl", "setpriv"]) if (!has(c)) return `${c} is not installed (apt-get install etcd-server etcd-client openssl util-linux)`;
  if (process.getuid?.() !== 0) return "not running as root (the scripts chown files to the etcd user)";
  if (spawnSync("getent", ["passwd", "etcd"]).status !== 0) return "there is no etcd user (the etcd-server package creates it)";
  return undefined;
}

/** The first address:port that is not free, or undefined. */
export async function busyPort(addresses: string[], ports: number[]): Promise<string | undefined> {
  for (const a of addresses)
    for (const p of ports) {
      const free = await new Promise<boolean>((resolve) => {
        const s = net.createServer();
        s.once("error", () => resolve(false));
        s.listen(p, a, () => s.close(() => resolve(true)));
      });
      if (!free) return `${a}:${p}`;
    }
  return undefined;
}

/** The fake `systemctl` (bash functions), sourced through BASH_ENV. */
const FAKE_SYSTEMD = path.join(__dirname, "fake-systemd.sh");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Absolute paths the etcd scripts use on a real host, relocated under a host's root. */
export const RELOCATED = ["/etc/systemd/system/etcd.service", "/etc/etcd", "/var/lib/hakube/etcd"];

export class LocalHost {
  readonly root: string;
  constructor(
    readonly name: string,
    readonly address: string,
    base: string,
    /** The stack's etcd.dataDir (relocated to `<root>/data`). */
    private readonly dataDir: string,
    /** Whole-text replacements applied before relocation (e.g. certificate PEMs), shared by all hosts. */
    private readonly substitutions: Map<string, string> = new Map(),
  ) {
    this.root = path.join(base, name);
    fs.mkdirSync(this.root, { recursive: true, mode: 0o755 });
    fs.chmodSync(this.root, 0o755);
  }

  /** Relocate one host's command text (single pass: inserted paths are not rewritten again). */
  relocate(text: string): string {
    for (const [from, to] of this.substitutions) text = text.split(from).join(to);
    const targets = [...RELOCATED, this.dataDir, ",https://127.0.0.1:2379"];
    const re = new RegExp(targets.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
    return text.replace(re, (m) => (m === ",https://127.0.0.1:2379" ? "" : m === this.dataDir ? `${this.root}/data` : `${this.root}${m}`));
  }

  path(p: string): string {
    return p === this.dataDir ? `${this.root}/data` : `${this.root}${p}`;
  }

  /** Run a rendered command (as the command provider would: its text through a shell, secrets on stdin). */
  run(commandText: string, stdin?: string, opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? 45_000;
    const t0 = Date.now();
    return new Promise((resolve) => {
      // its own process group: a script that overruns is killed with everything it started
      const p = spawn("bash", ["-c", this.relocate(commandText)], {
        env: { ...process.env, ...(opts.env ?? {}), BASH_ENV: FAKE_SYSTEMD, FAKE_ROOT: this.root },
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
      });
      const timer = setTimeout(() => {
        try {
          process.kill(-p.pid!, "SIGKILL");
        } catch {
          /* gone */
        }
      }, timeoutMs);
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d) => (stdout += d));
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr: signal ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr, ms: Date.now() - t0 });
      });
      p.stdin.end(stdin ?? "");
    });
  }

  /** The PID of the running etcd, if any. */
  pid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.root, "etcd.pid"), "utf8").trim());
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.split(" ")[2] === "Z" ? undefined : pid;
    } catch {
      return undefined;
    }
  }

  /** systemctl calls so far (without timestamps). */
  systemctlCalls(): string[] {
    try {
      return fs
        .readFileSync(path.join(this.root, "systemctl.log"), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.replace(/^\d+ /, ""));
    } catch {
      return [];
    }
  }

  /** Every PID the fake systemd started for this host. */
  startedPids(): number[] {
    try {
      return fs.readFileSync(path.join(this.root, "pids"), "utf8").split("\n").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    const pid = this.pid();
    if (pid) process.kill(pid, signal);
  }

  /** Kill every etcd this host started (afterAll). */
  cleanup(): void {
    for (const pid of this.startedPids()) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        if (stat.split(" ")[2] !== "Z") process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
}

export function tempBase(): string {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-etcd-"));
  fs.chmodSync(base, 0o755);
  return base;
}

/** Run a command-line tool, resolve with its result (never throws). */
export function runTool(cmd: string, args: string[], timeoutMs = 20_000): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 }));
  });
}
