/**
 * Run `command:remote:Command`s over real SSH, as the command provider does: one connection per
 * command, the `create` text executed by the login shell, `stdin` written and closed, exit
 * status ≠ 0 is a failure carrying stderr; the server's host key is verified when the
 * connection has `hostKey`. Every execution is recorded (host, step, start, end, outcome).
 */
import { Client } from "ssh2";
import type { CommandExecution, CommandExecutor } from "./mocks";

export interface Execution {
  name: string;
  host: string;
  /** the component prefix of the name (`etcd` in `etcd-config-etcd1`) */
  component: string;
  step: string;
  startMs: number;
  endMs: number;
  skipped: boolean;
  exitCode?: number | null;
  stdout: string;
  stderr: string;
  error?: string;
  /** what ran, for re-running it (idempotency checks) */
  command: string;
  stdin?: string;
  connection: SshTarget;
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey?: string;
}

export interface SshExecutorOptions {
  /** Run this command for real? (others are recorded as skipped, with empty stdout) */
  select?: (name: string) => boolean;
  /** Concurrent commands per host (sshd's MaxStartups/MaxSessions; the provider dials per command). */
  perHostConcurrency?: number;
  /** Give up on one command after this long. */
  timeoutMs?: number;
  /** Called when a command starts/ends (progress output). */
  onEvent?: (e: { kind: "start" | "end"; execution: Partial<Execution> }) => void;
}

class Limiter {
  private queue: (() => void)[] = [];
  private active = 0;
  constructor(private readonly max: number) {}
  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await f();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** The key blob of an OpenSSH public key line. */
function hostKeyBlob(line: string): Buffer {
  const parts = line.trim().split(/\s+/);
  return Buffer.from(parts[1] ?? "", "base64");
}

export interface ExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** One SSH exec with one fresh connection. Rejects on connection/host-key errors and timeouts. */
export function sshExec(t: SshTarget, command: string, stdin: string | undefined, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.end();
      f();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms`))), timeoutMs);
    conn
      .on("ready", () => {
        conn.exec(command, (err, ch) => {
          if (err) return finish(() => reject(err));
          let stdout = "";
          let stderr = "";
          let exitCode: number | null = null;
          ch.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
          ch.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
          ch.on("exit", (code: number | null) => (exitCode = code));
          ch.on("close", () => finish(() => resolve({ exitCode, stdout, stderr })));
          if (stdin !== undefined) ch.end(stdin);
          else ch.end();
        });
      })
      .on("error", (e) => finish(() => reject(e)))
      .connect({
        host: t.host,
        port: t.port,
        username: t.user,
        privateKey: t.privateKey,
        readyTimeout: 15_000,
        hostVerifier: t.hostKey ? (key: Buffer) => key.equals(hostKeyBlob(t.hostKey!)) : () => true,
      });
  });
}

export function targetOf(inputs: { connection: { host: string; port?: number; user?: string; privateKey: string; hostKey?: string } }): SshTarget {
  const c = inputs.connection;
  return { host: c.host, port: c.port ?? 22, user: c.user ?? "root", privateKey: c.privateKey, ...(c.hostKey ? { hostKey: c.hostKey } : {}) };
}

/** `component-step-host` → parts, given the known host names. */
export function splitName(name: string, hostNames: string[]): { component: string; step: string; host: string } {
  const host = [...hostNames].sort((a, b) => b.length - a.length).find((h) => name.endsWith(`-${h}`)) ?? "";
  const rest = host ? name.slice(0, -(host.length + 1)) : name;
  const dash = rest.indexOf("-");
  return { component: dash > 0 ? rest.slice(0, dash) : rest, step: dash > 0 ? rest.slice(dash + 1) : "", host };
}

export interface SshExecutor {
  executor: CommandExecutor;
  executions: Execution[];
}

export function sshExecutor(hostNames: string[], opts: SshExecutorOptions = {}): SshExecutor {
  const executions: Execution[] = [];
  const limiters = new Map<string, Limiter>();
  const t0 = Date.now();
  const executor: CommandExecutor = async (c: CommandExecution) => {
    const { component, step, host } = splitName(c.name, hostNames);
    const target = targetOf(c.inputs);
    const e: Execution = {
      name: c.name,
      host,
      component,
      step,
      startMs: Date.now() - t0,
      endMs: 0,
      skipped: false,
      stdout: "",
      stderr: "",
      command: c.inputs.create,
      stdin: c.inputs.stdin,
      connection: target,
    };
    executions.push(e);
    if (opts.select && !opts.select(c.name)) {
      e.skipped = true;
      e.endMs = e.startMs;
      return { stdout: "", stderr: "" };
    }
    const key = `${target.host}:${target.port}`;
    if (!limiters.has(key)) limiters.set(key, new Limiter(opts.perHostConcurrency ?? 4));
    return limiters.get(key)!.run(async () => {
      e.startMs = Date.now() - t0;
      opts.onEvent?.({ kind: "start", execution: e });
      try {
        const r = await sshExec(target, c.inputs.create, c.inputs.stdin, opts.timeoutMs ?? 600_000);
        Object.assign(e, { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr });
        if (r.exitCode !== 0) throw new Error(`Process exited with status ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
        return { stdout: r.stdout.replace(/\n$/, ""), stderr: r.stderr.replace(/\n$/, "") };
      } catch (err) {
        e.error = `${c.name} on ${host || target.host}: ${(err as Error).message}`;
        throw new Error(e.error);
      } finally {
        e.endMs = Date.now() - t0;
        opts.onEvent?.({ kind: "end", execution: e });
      }
    });
  };
  return { executor, executions };
}
