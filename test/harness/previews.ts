/**
 * What a reviewer would see in `pulumi preview --diff` for a change, computed from the program's
 * inputs under the mocks (no engine): evaluate the program before and after the change with the
 * same emulated state (keys, certificates and random values stay as they are, as in a real stack),
 * compare every registration's inputs by type and name, and render the changed command texts as
 * unified diffs. Used by test/previews.test.ts, which writes docs/previews/.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stableJson, TOKENS, type Registration } from "./mocks";
import { ROOT, runProgram, type RunResult, type StackConfig } from "./program";

export interface ResourceChange {
  /** `create` | `delete` | `update` */
  op: "create" | "delete" | "update";
  type: string;
  name: string;
  /** input properties that differ (update), or every input property (create/delete) */
  properties: string[];
  before?: Registration;
  after?: Registration;
}

/** Input properties whose values the real engine shows as `[secret]`. */
export const SECRET_PROPERTIES = ["stdin", "connection"];

export function compare(before: RunResult, after: RunResult): ResourceChange[] {
  const key = (r: Registration) => `${r.type}::${r.name}`;
  const a = new Map(before.harness.registrations.map((r) => [key(r), r]));
  const b = new Map(after.harness.registrations.map((r) => [key(r), r]));
  const out: ResourceChange[] = [];
  for (const [k, r] of b) {
    const old = a.get(k);
    if (!old) out.push({ op: "create", type: r.type, name: r.name, properties: Object.keys(r.inputs).sort(), after: r });
    else {
      const props = [...new Set([...Object.keys(old.inputs), ...Object.keys(r.inputs)])].filter((p) => stableJson(old.inputs[p] ?? null) !== stableJson(r.inputs[p] ?? null)).sort();
      if (props.length) out.push({ op: "update", type: r.type, name: r.name, properties: props, before: old, after: r });
    }
  }
  for (const [k, r] of a) if (!b.has(k)) out.push({ op: "delete", type: r.type, name: r.name, properties: Object.keys(r.inputs).sort(), before: r });
  return out.sort((x, y) => x.name.localeCompare(y.name) || x.type.localeCompare(y.type));
}

/** `diff -u` of two texts (labels a/… b/…); "" when equal. */
export function unifiedDiff(label: string, a: string, b: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-diff-"));
  const fa = path.join(dir, "a");
  const fb = path.join(dir, "b");
  fs.writeFileSync(fa, a.endsWith("\n") ? a : a + "\n");
  fs.writeFileSync(fb, b.endsWith("\n") ? b : b + "\n");
  try {
    execFileSync("diff", ["-u", "--label", `a/${label}`, "--label", `b/${label}`, fa, fb], { encoding: "utf8" });
    return "";
  } catch (e) {
    const err = e as { status?: number; stdout?: string };
    if (err.status === 1) return err.stdout ?? "";
    throw e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The program with one source file changed, in a temp copy of index.ts and components/ (a code
 * change, as in a pull request). `edit` must change the file, or this throws.
 */
export function programCopyWith(file: string, edit: (text: string) => string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-change-"));
  fs.cpSync(path.join(ROOT, "components"), path.join(dir, "components"), { recursive: true });
  fs.copyFileSync(path.join(ROOT, "index.ts"), path.join(dir, "index.ts"));
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  const target = path.join(dir, file);
  const before = fs.readFileSync(target, "utf8");
  const after = edit(before);
  if (after === before) throw new Error(`previews: the edit of ${file} changed nothing (was the code it edits renamed?)`);
  fs.writeFileSync(target, after);
  return path.join(dir, "index");
}

export interface PreviewInput {
  slug: string;
  title: string;
  /** what the pull request changes, in words (markdown) */
  change: string;
  /** the change itself, as a reviewer sees it in the pull request (a stack-file or code diff) */
  sourceDiff: string;
  base: StackConfig;
  /** the changed config (default: base) */
  changed?: StackConfig;
  /** the changed program (default: this repository's index.ts) */
  module?: string;
}

export interface Preview {
  input: PreviewInput;
  changes: ResourceChange[];
  before: RunResult;
  after: RunResult;
  markdown: string;
}

export const LABEL =
  "Computed from the program's inputs under mocks, **not captured from `pulumi preview`**: the program was evaluated before and after the change with Pulumi's mock monitor and the same emulated state (the same keys, certificates and random values, as in a real stack), every resource's inputs were compared by type and name, and the changed command texts are shown as unified diffs. The real engine's preview shows the same inputs, in its own layout; it also lists the component resources as unchanged and shows secret inputs (`connection`, `stdin`) as `[secret]`.";

function commandText(r: Registration, prop: "create" | "delete"): string {
  return String(r.inputs[prop] ?? "");
}

/** `before`: an evaluation of `p.base` to reuse (several changes to one base need it once). */
export async function computePreview(p: PreviewInput, before?: RunResult): Promise<Preview> {
  before ??= await runProgram(p.base);
  if (before.error) throw before.error;
  const after = await runProgram(p.changed ?? p.base, { state: before.harness.state, ...(p.module ? { module: path.relative(ROOT, p.module) } : {}) });
  if (after.error) throw after.error;
  const changes = compare(before, after);
  const count = (op: string) => changes.filter((c) => c.op === op).length;
  const total = after.harness.registrations.length;
  const lines: string[] = [];
  lines.push(`# Preview: ${p.title}`, "", `> ${LABEL}`, "", p.change, "", "```diff", p.sourceDiff.trimEnd(), "```", "");
  lines.push(`**Plan: ${count("create")} to create, ${count("update")} to update, ${count("delete")} to delete, ${total - count("create") - count("update")} unchanged.**`, "");
  lines.push("| op | resource | type | changed inputs |", "|---|---|---|---|");
  const sign = { create: "+", update: "~", delete: "-" } as const;
  for (const c of changes) lines.push(`| ${sign[c.op]} ${c.op} | \`${c.name}\` | \`${c.type}\` | ${c.properties.map((x) => (SECRET_PROPERTIES.includes(x) ? `\`${x}\` [secret]` : `\`${x}\``)).join(", ")} |`);
  lines.push("");
  for (const c of changes) {
    if (c.type !== TOKENS.command) continue;
    lines.push(`## ${sign[c.op]} \`${c.name}\` (${c.op})`, "");
    if (c.op === "update") {
      for (const prop of ["create", "delete"] as const) {
        const d = unifiedDiff(`${c.name}.${prop}`, commandText(c.before!, prop), commandText(c.after!, prop));
        if (d) lines.push("```diff", d.trimEnd(), "```", "");
      }
      const hidden = c.properties.filter((x) => SECRET_PROPERTIES.includes(x));
      if (hidden.length) lines.push(`Also changed, shown as \`[secret]\`: ${hidden.map((x) => `\`${x}\``).join(", ")}.`, "");
    } else {
      const r = (c.after ?? c.before)!;
      const stdinItems = String(r.inputs.stdin ?? "").split("\n").filter(Boolean).length;
      lines.push(`\`connection\`: host \`${r.inputs.connection.host}\`, user \`${r.inputs.connection.user}\` (the key is secret)${stdinItems ? `; \`stdin\`: ${stdinItems} secret item(s)` : ""}.`, "");
      lines.push("```bash", commandText(r, "create").trimEnd(), "```", "");
      if (r.inputs.delete) lines.push("On delete:", "", "```bash", commandText(r, "delete").trimEnd(), "```", "");
    }
  }
  return { input: p, changes, before, after, markdown: lines.join("\n") };
}
