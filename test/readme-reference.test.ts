/**
 * Every stack setting the spec accepts is in the README's configuration reference. The settings
 * are derived from the zod schemas (components/config/spec.ts `CONFIG_SCHEMAS`), so a key added
 * to a schema — a new etcd tuning field, a new top-level block — fails this test until the README
 * documents it:
 * - a top-level key `hakube:<key>` must have a row in the reference table;
 * - every field of an object key (nested ones too: `ingress.http.nodePort`) must be named, in a
 *   code span, in that key's paragraph (`**\`<key>\`**…`; the hosts' one is `**Host**`), or have
 *   its own row in a table of the reference section (`| \`kubernetes.imageRepository\` |`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { CONFIG_KEYS, CONFIG_SCHEMAS } from "../components/config/spec";
import { ROOT } from "./harness/program";

/** Field paths of a schema (`["ingress", "http", "port"]`), through optional/default/pipe/array wrappers. */
export function fieldPaths(schema: z.ZodType, prefix: string[] = []): string[][] {
  const def = (schema as unknown as { _zod: { def: Record<string, any> } })._zod.def;
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "catch":
    case "readonly":
    case "nonoptional":
      return fieldPaths(def.innerType, prefix);
    case "pipe":
      return [...fieldPaths(def.in, prefix), ...fieldPaths(def.out, prefix)];
    case "array":
      return fieldPaths(def.element, prefix);
    case "union":
      return (def.options as z.ZodType[]).flatMap((o) => fieldPaths(o, prefix));
    case "object":
      return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([k, v]) => [[...prefix, k], ...fieldPaths(v, [...prefix, k])]);
    default:
      return [];
  }
}

/** The README's configuration reference section. */
function referenceSection(readme: string): string {
  const start = readme.indexOf("\n## Configuration reference");
  if (start < 0) throw new Error("README.md has no '## Configuration reference' section");
  const end = readme.indexOf("\n## ", start + 5);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** The paragraph that documents an object key's fields. */
function paragraphOf(section: string, key: string): string | undefined {
  const heads = key === "hosts" ? ["**Host**"] : [`**\`${key}\`**`];
  const paragraphs = section.split(/\n\s*\n/);
  return paragraphs.find((p) => heads.some((h) => p.trimStart().startsWith(h)));
}

/** Identifiers inside the code spans of a text. */
function codeIdentifiers(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/`([^`]+)`/g)) for (const id of m[1].matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) out.add(id[0]);
  return out;
}

/** What the README fails to document, for a set of schemas. */
export function undocumented(readme: string, schemas: Record<string, z.ZodType>): string[] {
  const section = referenceSection(readme);
  const missing: string[] = [];
  for (const [key, schema] of Object.entries(schemas)) {
    if (!new RegExp(`^\\| \`hakube:${key}\` \\|`, "m").test(section)) missing.push(`hakube:${key} (no row in the reference table)`);
    const paths = fieldPaths(schema);
    if (paths.length === 0) continue;
    const paragraph = paragraphOf(section, key);
    if (!paragraph) {
      missing.push(`hakube:${key} (no paragraph starting with ${key === "hosts" ? "**Host**" : `**\`${key}\`**`} documents its fields)`);
      continue;
    }
    const ids = codeIdentifiers(paragraph);
    const rowFor = (p: string[]) => new RegExp(`^\\| \`(hakube:)?${`${key}.${p.join(".")}`.replace(/\./g, "\\.")}\` \\|`, "m").test(section);
    for (const p of paths) if (!p.every((seg) => ids.has(seg)) && !rowFor(p)) missing.push(`hakube:${key}.${p.join(".")}`);
  }
  return missing;
}

const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

describe("README configuration reference", () => {
  it("every key of the contract has a schema (a new key needs one in CONFIG_SCHEMAS)", () => {
    expect(Object.keys(CONFIG_SCHEMAS).sort()).toEqual([...CONFIG_KEYS].sort());
  });

  it("derives the fields from the schemas, nested ones included", () => {
    const lb = fieldPaths(CONFIG_SCHEMAS.loadBalancer).map((p) => p.join("."));
    expect(lb).toEqual(expect.arrayContaining(["vip", "vipPrefix", "ingress", "ingress.http", "ingress.http.nodePort", "ingress.https.port"]));
    expect(fieldPaths(CONFIG_SCHEMAS.hosts).map((p) => p.join("."))).toEqual(expect.arrayContaining(["name", "address", "internalAddress", "hostKey", "taints"]));
    expect(fieldPaths(CONFIG_SCHEMAS.kubernetes).map((p) => p.join("."))).toEqual(expect.arrayContaining(["containerd.runcVersion", "bootstrapTokenTtl"]));
    expect(fieldPaths(CONFIG_SCHEMAS.sshPort)).toEqual([]);
  });

  it("documents every stack setting the spec accepts", () => {
    expect(undocumented(readme, CONFIG_SCHEMAS)).toEqual([]);
  });

  it("notices an undocumented key, field or nested field", () => {
    const extra = {
      ...CONFIG_SCHEMAS,
      airgapMirror: z.strictObject({ url: z.string() }),
      etcd: (CONFIG_SCHEMAS.etcd as z.ZodObject).extend({ snapshotCount: z.number().optional() }),
      loadBalancer: (CONFIG_SCHEMAS.loadBalancer as z.ZodObject).extend({ ingress: z.strictObject({ http: z.strictObject({ proxyProtocol: z.boolean() }) }).optional() }),
    };
    expect(undocumented(readme.replace("| `kubernetes.allowCgroupV1` |", "| `kubernetes.allowCgroupV1x` |"), extra)).toEqual([
      "hakube:loadBalancer.ingress.http.proxyProtocol",
      "hakube:etcd.snapshotCount",
      "hakube:kubernetes.allowCgroupV1",
      "hakube:airgapMirror (no row in the reference table)",
      "hakube:airgapMirror (no paragraph starting with **`airgapMirror`** documents its fields)",
    ]);
  });
});
