/**
 * One evaluation in its own process (the program module evaluates once per process), for
 * `bench/run.ts`. Prints one JSON line (the last line of stdout).
 *
 *   child.ts topology N [--knob ID] [--state-in F] [--state-out F] [--digests-out F]
 *   child.ts floor CUSTOMS COMPONENTS
 *
 * `topology`: `index.ts` on `benchTopology(N)` (with one knob changed) under the harness's
 * record-only mocks: real keys/certificates/random values, no host contacted. `--state-in`
 * hands in the provider state of an earlier run (as the engine's state would: unchanged
 * resources keep their outputs), so two evaluations can be compared input by input.
 * `floor`: the same mocks and SDK registering CUSTOMS bare custom resources under COMPONENTS
 * components (bench/floor.ts): what the SDK costs for that many resources, whatever they are.
 */
import * as fs from "node:fs";
import { performance } from "node:perf_hooks";
import { evaluateProgram } from "../test/harness/program";
import { TOKENS, type ResourceState } from "../test/harness/mocks";
import { KNOBS } from "./blast";
import { commandsPerHost, inputDigests } from "./measure";
import { benchHosts, benchTopology } from "./topology";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main() {
  const [mode, a, b, ...rest] = process.argv.slice(2);
  const args = [a, b, ...rest];
  if (mode === "floor") {
    process.env.HAKUBE_BENCH_FLOOR = `${a}:${b}`;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = await evaluateProgram({}, { module: "bench/floor", withProjectDefaults: false });
    const evaluationMs = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    if (r.error) throw r.error;
    const maxRssKb = process.resourceUsage().maxRSS;
    console.log(JSON.stringify({ mode, resources: r.harness.registrations.length, evaluationMs: Math.round(evaluationMs), cpuMs: Math.round((cpu.user + cpu.system) / 1000), maxRssKb, processMs: Math.round(performance.now()) }));
    return;
  }
  if (mode !== "topology") throw new Error(`usage: child.ts topology N | floor CUSTOMS COMPONENTS`);
  const n = Number(a);
  const knobId = flag(args, "--knob");
  const knob = knobId ? KNOBS.find((k) => k.id === knobId) : undefined;
  if (knobId && !knob) throw new Error(`unknown knob ${knobId}`);
  const base = benchTopology(n);
  const config = knob ? knob.change(base) : base;
  const stateIn = flag(args, "--state-in");
  const state: ResourceState | undefined = stateIn ? new Map(JSON.parse(fs.readFileSync(stateIn, "utf8"))) : undefined;

  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = await evaluateProgram(config, state ? { state } : {});
  const evaluationMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  if (r.error) throw r.error;
  const maxRssKb = process.resourceUsage().maxRSS;

  const regs = r.harness.registrations;
  const hostNames = (config["hakube:hosts"] as { name: string }[]).map((h) => h.name);
  const perHost = commandsPerHost(regs, hostNames);
  const roleOf = new Map(benchHosts(n).map((h) => [h.name, h.roles.join("+")]));
  const byRole: Record<string, number> = {};
  for (const [h, c] of Object.entries(perHost)) {
    const role = roleOf.get(h) ?? "added worker";
    byRole[role] = Math.max(byRole[role] ?? 0, c);
  }
  const stateOut = flag(args, "--state-out");
  if (stateOut) fs.writeFileSync(stateOut, JSON.stringify([...r.harness.state]));
  const digestsOut = flag(args, "--digests-out");
  if (digestsOut) fs.writeFileSync(digestsOut, JSON.stringify({ hostNames, digests: inputDigests(regs) }));
  const commands = regs.filter((x) => x.type === TOKENS.command);
  console.log(
    JSON.stringify({
      mode,
      hosts: hostNames.length,
      knob: knobId ?? null,
      evaluationMs: Math.round(evaluationMs),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      maxRssKb,
      resources: regs.length,
      customResources: regs.filter((x) => x.custom).length,
      components: regs.filter((x) => !x.custom).length,
      commands: commands.length,
      commandBytes: commands.reduce((s, c) => s + String(c.inputs.create ?? "").length + String(c.inputs.delete ?? "").length, 0),
      maxCommandsPerHost: Math.max(...Object.values(perHost)),
      commandsPerHostByRole: byRole,
      processMs: Math.round(performance.now()),
    }),
  );
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
