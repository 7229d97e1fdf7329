/**
 * Evaluate `index.ts` under the harness mocks with a given stack config, as `pulumi up` would
 * (minus the engine). Several evaluations may run in one test file (modules are reset).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { createHarness, type Harness, type HarnessOptions } from "./mocks";

export const ROOT = path.resolve(__dirname, "../..");
export const PROJECT = "hakube";

/** Config as the CLI passes it: `hakube:key` → string (objects and lists as JSON). */
export type StackConfig = Record<string, unknown>;

export function toCliConfig(config: StackConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    out[k.includes(":") ? k : `${PROJECT}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

/** The `config:` block of a stack file (secure values are left out). */
export function readStackFile(file: string): StackConfig {
  const doc = parse(fs.readFileSync(path.resolve(ROOT, file), "utf8")) as { config?: Record<string, unknown> };
  return Object.fromEntries(
    Object.entries(doc.config ?? {}).filter(([, v]) => !(v && typeof v === "object" && "secure" in (v as object))),
  );
}

/** Pulumi.yaml's scalar defaults, applied the way the CLI applies them. */
export function projectDefaults(): StackConfig {
  const doc = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { config?: Record<string, { default?: unknown }> };
  const out: StackConfig = {};
  for (const [k, v] of Object.entries(doc.config ?? {})) if (v && v.default !== undefined) out[`${PROJECT}:${k}`] = String(v.default);
  return out;
}

export const TEST_SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-SSH-KEY-NOT-REAL-0123456789abcdef\n-----END OPENSSH PRIVATE KEY-----\n";

export interface RunOptions extends HarnessOptions {
  stack?: string;
  /** keys (with or without namespace) stored as secrets; default: sshPrivateKey */
  secretKeys?: string[];
  /** apply Pulumi.yaml defaults first (as the CLI does); default true */
  withProjectDefaults?: boolean;
  /** the program module, relative to the repository root (default `index`, this program) */
  module?: string;
  /** the project name the mocks report (default `hakube`) */
  project?: string;
}

export interface RunResult {
  harness: Harness;
  /** the program's exports (undefined when it failed) */
  outputs?: Record<string, unknown>;
  error?: Error;
  warnings: string[];
}

/** Resolve an Output (also a secret one). */
export function valueOf<T>(o: pulumi.Input<T> | undefined): Promise<T> {
  return new Promise((resolve) => pulumi.output(o as pulumi.Input<T>).apply((v) => (resolve(v as T), v)));
}

export async function settle(): Promise<void> {
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
}

/**
 * Evaluate the program once. Under vitest use `runProgram`, which resets
 * the module registry so a file can evaluate several configurations.
 */
export async function evaluateProgram(config: StackConfig, opts: RunOptions = {}): Promise<RunResult> {
  const harness = createHarness(opts);
  const secretKeys = (opts.secretKeys ?? ["sshPrivateKey"]).map((k) => (k.includes(":") ? k : `${PROJECT}:${k}`));
  const cli = { ...(opts.withProjectDefaults === false ? {} : toCliConfig(projectDefaults())), ...toCliConfig(config) };
  pulumi.runtime.setAllConfig(cli, secretKeys);
  await pulumi.runtime.setMocks(harness.mocks, opts.project ?? PROJECT, opts.stack ?? "dev");
  harness.attach();
  const warnings: string[] = [];
  const log = pulumi.log as { warn: (m: string) => Promise<void> };
  const originalWarn = log.warn;
  log.warn = async (m: string) => {
    warnings.push(m);
  };
  try {
    const mod = (await import(path.join(ROOT, opts.module ?? "index"))) as Record<string, unknown>;
    // a program whose module is a function (`export = async () => {…}`): Pulumi awaits it; its result are the outputs
    const main = typeof mod === "function" ? mod : typeof mod.default === "function" && Object.keys(mod).every((k) => k === "default" || k === "module.exports") ? mod.default : undefined;
    const outputs = main ? ((await (main as () => Promise<Record<string, unknown>>)()) ?? {}) : mod;
    await settle();
    return { harness, outputs, warnings };
  } catch (e) {
    await settle().catch(() => undefined);
    return { harness, error: e as Error, warnings };
  } finally {
    log.warn = originalWarn;
  }
}

/** `evaluateProgram` for vitest: a fresh module registry per evaluation, so a test file can evaluate many configurations. */
export async function runProgram(config: StackConfig, opts: RunOptions = {}): Promise<RunResult> {
  const { vi } = await import("vitest");
  vi.resetModules();
  return evaluateProgram(config, opts);
}
