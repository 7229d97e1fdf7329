/**
 * Deploy the `dev` stack onto the lab hosts through the realizing harness: real keys and
 * certificates, real random values, and the program's remote commands run over real SSH
 * (host keys verified). The stack's state (what `pulumi up` would keep) is persisted in the lab
 * directory, so a second deploy with the same config runs nothing — as an unchanged `pulumi up` —
 * and a resource the program no longer registers (a host left the config) is deleted at the end,
 * dependents first, a command by running its `delete` script, as `pulumi up` does.
 *
 *   npx tsx test/lab/deploy.ts [--engine nginx] [--components hosts,etcd,lb] [--set hakube:key=<JSON>]… [--fresh]
 *   npx tsx test/lab/deploy.ts --destroy   (every delete script of the saved state, dependents first, as `pulumi destroy`)
 *   (or `sudo npm run lab -- deploy`, which boots the lab first and uses `pulumi up` when the CLI is installed)
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { stableJson, TOKENS, type CommandExecutor, type Registration, type ResourceState } from "../harness/mocks";
import { evaluateProgram, readStackFile, valueOf, type RunOptions, type RunResult, type StackConfig } from "../harness/program";
import { sshExecutor, type Execution, type SshExecutor, type SshExecutorOptions } from "../harness/ssh";
import { deploySummary } from "./summary";

export const LAB_DIR = process.env.HAKUBE_LAB_DIR ?? "/var/lib/hakube-lab";
/** Components whose commands run for real in the lab: all of them (the site serves the Kubernetes toolchain). */
export const DEFAULT_COMPONENTS = ["hosts", "pki", "etcd", "lb", "controlplane", "workers"];
/** What the etcd/load-balancer suites (suite.ts) execute: the Kubernetes cluster has its own test (cluster.test.ts). */
export const ETCD_LB_COMPONENTS = ["hosts", "etcd", "lb"];
/** After a command failed: how long no command may run before the deploy is declared over. */
const FAILURE_GRACE_MS = 2000;

export interface LabDeployOptions {
  labDir?: string;
  /** config on top of Pulumi.dev.yaml + the lab's stack-config.json */
  overrides?: StackConfig;
  /** deploy this stack instead of the dev stack (`overrides` is then ignored) */
  stack?: LabStack;
  components?: string[];
  /** where the emulated stack state lives; `false` = keep it in memory only */
  statePath?: string | false;
  /** start from an empty state (a new stack) */
  fresh?: boolean;
  /** use this state (in memory; `statePath` is then ignored): a second deploy with the same map is an unchanged `pulumi up` */
  state?: ResourceState;
  /** with `state`: the commands that ran for real with the inputs in it (a previous result's `ran`) */
  ran?: Set<string>;
  log?: (line: string) => void;
  /** evaluate the program (vitest passes `runProgram`, which resets modules) */
  evaluate?: (config: StackConfig, opts: RunOptions) => Promise<RunResult>;
}

export interface LabDeployResult {
  result: RunResult;
  /** the emulated stack state after the deploy */
  state: ResourceState;
  executions: Execution[];
  config: StackConfig;
  figures: DeployFigures;
  /** commands that have run for real on these hosts with their current inputs (this deploy or an earlier one) */
  ran: Set<string>;
}

export interface DeployFigures {
  wallMs: number;
  evaluationMs: number;
  /** commands run over SSH */
  executed: number;
  /** commands of components not executed in the lab (recorded only) */
  skipped: number;
  /** commands whose inputs did not change since the last deploy (not run, as with `pulumi up`) */
  unchanged: number;
  /** of those: commands that ran for real before (with these inputs) */
  unchangedRan: number;
  /** of those: commands that never ran here (their component is not executed in the lab), by component */
  neverRan: Record<string, number>;
  criticalPathMs: number;
  criticalPath: string[];
  commandsPerHost: Record<string, number>;
  /** commands the program no longer registers, whose delete scripts ran (dependents first) */
  deleted: string[];
}

/** A config file `lab up` wrote (values as the CLI hands them over: JSON text, the SSH key as is). */
function readLabConfig(labDir: string, name: string): StackConfig {
  const file = path.join(labDir, name);
  if (!fs.existsSync(file)) throw new Error(`no ${file}: boot the lab first (sudo npm run lab -- up)`);
  const lab = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, string>;
  const parsed: StackConfig = {};
  for (const [k, v] of Object.entries(lab)) {
    try {
      parsed[k] = k.endsWith(":sshPrivateKey") ? v : JSON.parse(v);
    } catch {
      parsed[k] = v;
    }
  }
  return parsed;
}

/** Pulumi.dev.yaml + the lab's host keys, strictHostKeys and SSH key (+ overrides). */
export function labStackConfig(labDir = LAB_DIR, overrides: StackConfig = {}): StackConfig {
  return { ...readStackFile("Pulumi.dev.yaml"), ...readLabConfig(labDir, "stack-config.json"), ...overrides };
}

/** Another project's stack deployed on the lab's hosts (instead of the dev stack). */
export interface LabStack {
  /** its whole config (host keys and SSH key included) */
  config: StackConfig;
  /** the config key of its host list */
  hostsKey: string;
  /** how the harness evaluates it (module, project, secrets, stack references) */
  run: Partial<RunOptions>;
}

/**
 * examples/worker-pool's `dev` stack (its Pulumi.dev.yaml + the lab's host keys and SSH key), which
 * joins the dev cluster: `clusterOutputs` are what its StackReference reads (the dev stack's outputs).
 */
export function workerPoolStack(clusterOutputs: Record<string, unknown>, labDir = LAB_DIR): LabStack {
  const config = { ...readStackFile("examples/worker-pool/Pulumi.dev.yaml"), ...readLabConfig(labDir, "stack-config-worker-pool.json") };
  return {
    config,
    hostsKey: "workerPool:hosts",
    run: {
      module: "examples/worker-pool/index",
      project: "hakube-worker-pool",
      withProjectDefaults: false,
      secretKeys: ["workerPool:sshPrivateKey"],
      stackReferences: { [String(config["workerPool:clusterStack"])]: { outputs: clusterOutputs, secret: ["joinInfo", "kubeconfig"] } },
    },
  };
}

/**
 * Which copies of the hosts' root filesystems the lab runs: `lab up` writes `run/<name>.created`
 * whenever it makes a new copy (and `down` removes them). A state saved for other copies
 * describes hosts that no longer exist.
 */
export function labGeneration(labDir: string, hostNames: string[]): string {
  const parts = hostNames.map((n) => {
    try {
      return `${n}=${fs.readFileSync(path.join(labDir, "run", `${n}.created`), "utf8").trim()}`;
    } catch {
      return `${n}=?`;
    }
  });
  return createHash("sha256").update(parts.join("\n")).digest("hex").slice(0, 16);
}

function loadState(file: string | false, fresh: boolean, generation: string, log: (l: string) => void): ResourceState {
  if (!file || fresh || !fs.existsSync(file)) return new Map();
  const saved = fs.existsSync(`${file}.generation`) ? fs.readFileSync(`${file}.generation`, "utf8").trim() : "";
  if (saved !== generation) {
    log(`the lab hosts were created anew since the state in ${file} was saved: starting from an empty state (a new stack)`);
    return new Map();
  }
  return new Map(Object.entries(JSON.parse(fs.readFileSync(file, "utf8"))));
}
/**
 * Write a file only root can read (0600 in a 0700 directory), atomically. The mode is set
 * explicitly: `writeFileSync`'s mode applies only to a new file, not to one an older run left 0644.
 */
export function writeSecretFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(file), 0o700);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

function saveState(file: string | false, state: ResourceState, generation: string, ran: Set<string>, registrations?: Registration[]) {
  if (!file) return;
  writeSecretFile(file, JSON.stringify(Object.fromEntries(state)));
  writeSecretFile(`${file}.generation`, generation + "\n");
  writeSecretFile(`${file}.ran`, JSON.stringify([...ran].sort()) + "\n");
  // what each resource depends on (the engine keeps it in its state: `pulumi destroy` deletes dependents first)
  if (registrations) writeSecretFile(`${file}.deps`, JSON.stringify(Object.fromEntries(registrations.map((r) => [r.name, r.dependencies]))) + "\n");
}
/** The commands recorded as run for real next to a saved state (empty when the state is not used). */
function loadRan(file: string | false, state: ResourceState): Set<string> {
  if (!file || state.size === 0 || !fs.existsSync(`${file}.ran`)) return new Set();
  return new Set(JSON.parse(fs.readFileSync(`${file}.ran`, "utf8")) as string[]);
}

/** The hosts of the stack being deployed (the dev stack's `hakube:hosts`, or another stack's list). */
function stackHostNames(config: StackConfig, stack?: LabStack): string[] {
  return (config[stack?.hostsKey ?? "hakube:hosts"] as { name: string }[]).map((h) => h.name);
}
/** A state key `type::name::inputs` taken apart. */
function parseStateKey(key: string): { type: string; name: string; inputs: () => Record<string, unknown> } {
  const [type, name] = key.split("::", 2);
  return { type, name, inputs: () => JSON.parse(key.slice(type.length + name.length + 4)) as Record<string, unknown> };
}
/** A command's delete, as the provider runs it: its `delete` text over the same connection. */
function runDelete(ssh: SshExecutor, name: string, inputs: Record<string, unknown>) {
  return ssh.executor({ name, inputs: { ...inputs, create: inputs.delete } });
}
/** One progress line per finished command. */
function progress(log: (l: string) => void, suffix = ""): SshExecutorOptions["onEvent"] {
  return ({ kind, execution: e }) => {
    if (kind === "end") log(`  ${e.error ? "FAIL" : "ok  "} ${String(((e.endMs ?? 0) - (e.startMs ?? 0)) / 1000).padStart(6)}s ${e.name}${suffix}`);
  };
}

/** Longest chain of dependent commands, weighted by their measured durations. */
export function criticalPath(registrations: Registration[], executions: Execution[]): { ms: number; path: string[] } {
  const dur = new Map(executions.filter((e) => !e.skipped).map((e) => [e.name, e.endMs - e.startMs]));
  const byName = new Map(registrations.map((r) => [r.name, r]));
  const memo = new Map<string, { ms: number; path: string[] }>();
  const visit = (name: string, seen: Set<string>): { ms: number; path: string[] } => {
    const m = memo.get(name);
    if (m) return m;
    if (seen.has(name)) return { ms: 0, path: [] };
    seen.add(name);
    const r = byName.get(name);
    let best = { ms: 0, path: [] as string[] };
    for (const d of r?.dependencies ?? []) {
      const sub = visit(d, seen);
      if (sub.ms > best.ms) best = sub;
    }
    const own = dur.get(name) ?? 0;
    const out = { ms: best.ms + own, path: own > 0 ? [...best.path, name] : best.path };
    memo.set(name, out);
    return out;
  };
  let best = { ms: 0, path: [] as string[] };
  for (const r of registrations) {
    const p = visit(r.name, new Set());
    if (p.ms > best.ms) best = p;
  }
  return best;
}

export async function deployLab(o: LabDeployOptions = {}): Promise<LabDeployResult> {
  const labDir = o.labDir ?? LAB_DIR;
  const log = o.log ?? ((l: string) => console.log(l));
  const config = o.stack?.config ?? labStackConfig(labDir, o.overrides);
  const hostNames = stackHostNames(config, o.stack);
  const components = o.components ?? DEFAULT_COMPONENTS;
  const statePath = o.statePath === undefined ? path.join(labDir, "state", "dev.json") : o.statePath;
  const generation = labGeneration(labDir, hostNames);
  const state = o.state ?? loadState(statePath, o.fresh ?? false, generation, log);
  const ranBefore = o.state ? new Set(o.ran ?? []) : loadRan(statePath, state);
  const ssh = sshExecutor(hostNames, {
    select: (name) => components.some((c) => name.startsWith(`${c}-`)),
    onEvent: progress(log),
  });
  // A failed command's dependents never register, so the evaluation may never settle: once a
  // command failed and no command has run for a while, the deploy is over (as `pulumi up` ends).
  const failed: string[] = [];
  let inFlight = 0;
  let onIdle = () => {};
  const stopped = new Promise<"stopped">((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    onIdle = () => {
      clearTimeout(timer);
      if (failed.length && inFlight === 0) timer = setTimeout(() => inFlight === 0 && resolve("stopped"), FAILURE_GRACE_MS);
    };
  });
  const executor: CommandExecutor = async (c) => {
    inFlight++;
    try {
      return await ssh.executor(c);
    } catch (e) {
      failed.push((e as Error).message);
      throw e;
    } finally {
      inFlight--;
      onIdle();
    }
  };
  const t0 = Date.now();
  const evaluate = o.evaluate ?? evaluateProgram;
  const outcome = await Promise.race([evaluate(config, { ...o.stack?.run, state, executor }), stopped]);
  const wallMs = Date.now() - t0;
  // ran with the current inputs: what ran now, plus what ran before and was not touched now
  const ran = new Set([...ranBefore].filter((n) => !ssh.executions.some((e) => e.name === n)));
  for (const e of ssh.executions) if (!e.skipped && !e.error) ran.add(e.name);
  if (!o.state) saveState(statePath, state, generation, ran);
  if (outcome === "stopped") throw new Error(`deploy failed (${failed.length} command(s); their dependents did not run):\n${failed.map((f) => `  ${f}`).join("\n")}`);
  const result = outcome;
  if (result.error) throw result.error;
  const failures = result.harness.failures();
  if (failures.length) {
    const lines = failures.map((f) => `  ${f.name}: ${f.error}`).join("\n");
    throw new Error(`deploy failed (${failures.length} resource(s)):\n${lines}`);
  }
  // As `pulumi up` ends: resources in the state that the program no longer registers are deleted,
  // dependents first (the state keeps creation order: a resource is created after what it depends
  // on), a command by running its `delete` script; stale entries of re-registered ones are dropped.
  const registered = new Set(result.harness.registrations.filter((r) => r.custom).map((r) => `${r.type}::${r.name}`));
  const current = new Set(result.harness.registrations.filter((r) => r.custom).map((r) => `${r.type}::${r.name}::${stableJson(r.inputs)}`));
  const deleted: string[] = [];
  for (const key of [...state.keys()].reverse()) {
    if (current.has(key)) continue;
    const { type, name, inputs: parse } = parseStateKey(key);
    if (!registered.has(`${type}::${name}`) && type === TOKENS.command) {
      const inputs = parse();
      if (inputs.delete) {
        await runDelete(ssh, name, inputs);
        deleted.push(name);
      }
      ran.delete(name);
    }
    state.delete(key);
  }
  if (!o.state) saveState(statePath, state, generation, ran, result.harness.registrations);
  const executed = ssh.executions.filter((e) => !e.skipped);
  const commandsPerHost: Record<string, number> = {};
  for (const e of executed) commandsPerHost[e.host] = (commandsPerHost[e.host] ?? 0) + 1;
  const cp = criticalPath(result.harness.registrations, ssh.executions);
  const commandRegs = result.harness.ofType(TOKENS.command);
  const notRun = commandRegs.filter((r) => !ssh.executions.some((e) => e.name === r.name));
  const neverRan: Record<string, number> = {};
  for (const r of notRun) if (!ran.has(r.name)) neverRan[r.name.split("-")[0]] = (neverRan[r.name.split("-")[0]] ?? 0) + 1;
  const evaluationMs = wallMs - (executed.length ? Math.max(...executed.map((e) => e.endMs)) - Math.min(...executed.map((e) => e.startMs)) : 0);
  return {
    result,
    state,
    executions: ssh.executions,
    config,
    figures: {
      wallMs,
      evaluationMs: Math.max(0, evaluationMs),
      executed: executed.length,
      skipped: ssh.executions.length - executed.length,
      unchanged: notRun.length,
      unchangedRan: notRun.filter((r) => ran.has(r.name)).length,
      neverRan,
      criticalPathMs: cp.ms,
      criticalPath: cp.path,
      commandsPerHost,
      deleted,
    },
    ran,
  };
}

/** What each resource depends on (direct dependencies, by name): a deploy's registrations, or the `.deps` file saved next to a state. */
export type Dependencies = Record<string, string[]>;

export interface LabDestroyOptions {
  labDir?: string;
  /** the stack whose state this is (default: the dev stack): its host list names the hosts */
  stack?: LabStack;
  /** the state to destroy (in memory); default: the dev stack's saved state (`statePath`) */
  state?: ResourceState;
  statePath?: string;
  /** default: from the deploy's registrations saved next to the state */
  dependencies?: Dependencies;
  log?: (line: string) => void;
}

export interface LabDestroyResult {
  /** commands whose delete scripts ran, in the order they finished */
  deleted: string[];
  /** commands in the state without a delete script (removed from the state only) */
  forgotten: string[];
  executions: Execution[];
  wallMs: number;
  /** the longest chain of deletes that had to wait for each other, weighted by their durations */
  criticalPathMs: number;
}

/**
 * `pulumi destroy` as the engine runs it, on the lab's hosts: every command in the state runs its
 * `delete` script (over SSH, as the command provider does) once every command that depends on it
 * — directly or through other resources — has been deleted; independent deletes run in parallel.
 * A failed delete stops the deletes that wait for it (they stay in the state, as with the engine);
 * the others go on. Everything else (keys, certificates, random values) leaves the state.
 */
export async function destroyLab(o: LabDestroyOptions = {}): Promise<LabDestroyResult> {
  const labDir = o.labDir ?? LAB_DIR;
  const log = o.log ?? ((l: string) => console.log(l));
  const statePath = o.statePath ?? path.join(labDir, "state", "dev.json");
  const config = o.stack?.config ?? labStackConfig(labDir);
  const hostNames = stackHostNames(config, o.stack);
  const state = o.state ?? loadState(statePath, false, labGeneration(labDir, hostNames), log);
  const deps: Dependencies = o.dependencies ?? (fs.existsSync(`${statePath}.deps`) ? JSON.parse(fs.readFileSync(`${statePath}.deps`, "utf8")) : {});
  const commands = new Map<string, { key: string; inputs: Record<string, unknown> }>();
  for (const key of state.keys()) {
    const { type, name, inputs } = parseStateKey(key);
    if (type === TOKENS.command) commands.set(name, { key, inputs: inputs() });
  }
  // the commands each command depends on, through any resource in between
  const reach = new Map<string, Set<string>>();
  const dependsOn = (name: string, inProgress = new Set<string>()): Set<string> => {
    const known = reach.get(name);
    if (known) return known;
    const out = new Set<string>();
    inProgress.add(name);
    for (const d of deps[name] ?? []) {
      if (inProgress.has(d)) continue; // a cycle: the engine refuses one, the program has none
      if (commands.has(d)) out.add(d);
      for (const x of dependsOn(d, inProgress)) out.add(x);
    }
    inProgress.delete(name);
    reach.set(name, out);
    return out;
  };
  const dependents = new Map<string, string[]>([...commands.keys()].map((n) => [n, []]));
  for (const n of commands.keys()) for (const d of dependsOn(n)) dependents.get(d)?.push(n);
  const ssh = sshExecutor(hostNames, {
    onEvent: progress(log, " (delete)"),
  });
  const deleted: string[] = [];
  const forgotten: string[] = [];
  const failures: string[] = [];
  const chain = new Map<string, number>();
  const started = new Map<string, Promise<void>>();
  const t0 = Date.now();
  const destroy = (name: string): Promise<void> => {
    let p = started.get(name);
    if (!p) {
      p = (async () => {
        const waits = dependents.get(name) ?? [];
        const settled = await Promise.allSettled(waits.map(destroy));
        if (settled.some((x) => x.status === "rejected")) throw new Error(`${name}: not deleted: a command that depends on it could not be deleted`);
        const c = commands.get(name)!;
        const before = Math.max(0, ...waits.map((w) => chain.get(w) ?? 0));
        const s = Date.now();
        if (c.inputs.delete) {
          try {
            await runDelete(ssh, name, c.inputs);
          } catch (e) {
            failures.push((e as Error).message);
            throw e;
          }
          deleted.push(name);
        } else forgotten.push(name);
        chain.set(name, before + (Date.now() - s));
        state.delete(c.key);
      })();
      started.set(name, p);
    }
    return p;
  };
  await Promise.allSettled([...commands.keys()].map(destroy));
  if (failures.length === 0) for (const key of [...state.keys()]) state.delete(key);
  if (!o.state && fs.existsSync(statePath)) {
    saveState(statePath, state, labGeneration(labDir, hostNames), new Set());
    if (state.size === 0) for (const f of [statePath, `${statePath}.ran`, `${statePath}.deps`, `${statePath}.generation`]) fs.rmSync(f, { force: true });
  }
  if (failures.length) throw new Error(`destroy failed (${failures.length} delete(s); what they wait for was not deleted and stays in the state):\n${failures.map((f) => `  ${f}`).join("\n")}`);
  return { deleted, forgotten, executions: ssh.executions, wallMs: Date.now() - t0, criticalPathMs: Math.max(0, ...chain.values()) };
}

/** A deploy's figures as the lab reports record them (reports/lab-<name>.json `deploy`). */
export function deployReport(d: LabDeployResult, components: string[]): Record<string, unknown> {
  const f = d.figures;
  return {
    components,
    wallMs: f.wallMs,
    evaluationMs: f.evaluationMs,
    executed: f.executed,
    skipped: f.skipped,
    criticalPathMs: f.criticalPathMs,
    ratio: Number((f.wallMs / Math.max(1, f.criticalPathMs)).toFixed(2)),
    criticalPath: f.criticalPath,
    commandsPerHost: f.commandsPerHost,
    componentSpans: componentSpans(d.executions),
    steps: d.executions.filter((e) => !e.skipped).map((e) => ({ name: e.name, ms: e.endMs - e.startMs })),
  };
}

/** Per component, from its first executed command's start to its last one's end (ms since the deploy started). */
export function componentSpans(executions: LabDeployResult["executions"]): Record<string, { fromMs: number; toMs: number; ms: number }> {
  const out: Record<string, { fromMs: number; toMs: number; ms: number }> = {};
  const t0 = Math.min(...executions.map((e) => e.startMs));
  for (const e of executions.filter((x) => !x.skipped)) {
    const c = (out[e.component] ??= { fromMs: Infinity, toMs: 0, ms: 0 });
    c.fromMs = Math.min(c.fromMs, Math.round(e.startMs - t0));
    c.toMs = Math.max(c.toMs, Math.round(e.endMs - t0));
    c.ms = c.toMs - c.fromMs;
  }
  return out;
}

/** Write the stack outputs (kubeconfig 0600) into the lab directory. */
export async function writeOutputs(r: RunResult, labDir = LAB_DIR): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r.outputs ?? {})) out[k] = await valueOf(v as never);
  writeSecretFile(path.join(labDir, "kubeconfig"), String(out.kubeconfig));
  writeSecretFile(path.join(labDir, "outputs.json"), JSON.stringify(out, null, 2));
  return out;
}

async function main() {
  const args = process.argv.slice(2);
  const flag = (n: string) => {
    const i = args.indexOf(n);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const overrides: StackConfig = {};
  const engine = flag("--engine");
  if (engine) {
    const base = readStackFile("Pulumi.dev.yaml")["hakube:loadBalancer"] as object;
    overrides["hakube:loadBalancer"] = { ...base, engine };
  }
  // --set hakube:key=<JSON>, repeatable: a stack config value on top of Pulumi.dev.yaml (as `pulumi config set --path`)
  args.forEach((a, i) => {
    if (a !== "--set") return;
    const kv = args[i + 1] ?? "";
    const eq = kv.indexOf("=");
    if (eq < 1) throw new Error(`--set wants key=<JSON>, got ${kv}`);
    overrides[kv.slice(0, eq)] = JSON.parse(kv.slice(eq + 1));
  });
  if (args.includes("--destroy")) {
    console.log("hakube lab destroy: the realizing harness stands in for the Pulumi engine: every command's delete script runs, dependents first");
    const r = await destroyLab();
    console.log(`\ndestroyed: ${r.deleted.length} delete scripts run in ${(r.wallMs / 1000).toFixed(1)} s; ${r.forgotten.length} commands without one removed from the state`);
    return;
  }
  const components = flag("--components")?.split(",");
  console.log(
    `hakube lab deploy: the realizing harness stands in for the Pulumi engine; executed for real: ${(components ?? DEFAULT_COMPONENTS).join(", ")} (other components' commands are recorded only)`,
  );
  const d = await deployLab({ overrides, components, fresh: args.includes("--fresh") });
  const out = await writeOutputs(d.result);
  const f = d.figures;
  console.log(`\n${deploySummary(f)}`);
  console.log(`critical path ${(f.criticalPathMs / 1000).toFixed(1)} s (${f.criticalPath.length} commands), wall/critical = ${f.criticalPathMs ? (f.wallMs / f.criticalPathMs).toFixed(2) : "—"}`);
  console.log(`\nstack outputs (all of them, secrets included, in ${path.join(LAB_DIR, "outputs.json")}, mode 0600):`);
  const secret = new Set(["kubeconfig", "joinInfo"]);
  for (const [k, v] of Object.entries(out)) {
    let shown: string;
    if (secret.has(k)) shown = `[secret]${k === "kubeconfig" ? ` → ${path.join(LAB_DIR, "kubeconfig")}` : ""}`;
    else if (typeof v === "string" && v.includes("-----BEGIN")) shown = `(PEM, ${v.length} bytes)`;
    else if (k === "nodes") shown = (v as { name: string; internalAddress: string; roles: string[] }[]).map((n) => `${n.name} ${n.internalAddress} ${n.roles.join("+")}`).join(", ");
    else shown = Array.isArray(v) ? v.join(", ") : String(v);
    console.log(`  ${k.padEnd(21)} ${shown}`);
  }
}

if (require.main === module) {
  // A failed command rejects its resource's promises inside the Pulumi runtime; the harness
  // records the failure and the deploy reports every one of them at the end (as `pulumi up` does).
  process.on("unhandledRejection", () => undefined);
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
