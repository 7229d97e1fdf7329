/**
 * What the benchmarks and the blast-radius tests read from one evaluation: resource inputs by
 * key, which host and step a resource belongs to, commands per host, and input differences
 * between two evaluations.
 */
import { createHash } from "node:crypto";
import { stableJson, TOKENS, type Registration } from "../test/harness/mocks";

/** `type::name`: unique per resource (the program test checks it). */
export const resourceKey = (r: Pick<Registration, "type" | "name">) => `${r.type}::${r.name}`;

/** Inputs by resource key (secrets unwrapped, keys sorted): equal strings ⇔ equal inputs. */
export function inputsByKey(regs: Registration[]): Map<string, string> {
  return new Map(regs.map((r) => [resourceKey(r), stableJson(r.inputs)]));
}

/** sha256 of each resource's inputs (small enough to pass between processes at 300 hosts). */
export function inputDigests(regs: Registration[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of regs) out[resourceKey(r)] = createHash("sha256").update(stableJson(r.inputs)).digest("hex");
  return out;
}

export interface InputDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

/** Resources whose inputs differ between two evaluations (by key; values compared as strings). */
export function diffInputs(a: Map<string, string> | Record<string, string>, b: Map<string, string> | Record<string, string>): InputDiff {
  const A = a instanceof Map ? a : new Map(Object.entries(a));
  const B = b instanceof Map ? b : new Map(Object.entries(b));
  const added = [...B.keys()].filter((k) => !A.has(k)).sort();
  const removed = [...A.keys()].filter((k) => !B.has(k)).sort();
  const changed = [...A.keys()].filter((k) => B.has(k) && A.get(k) !== B.get(k)).sort();
  return { added, removed, changed };
}

const SHORT_TYPES: Record<string, string> = {
  [TOKENS.command]: "command",
  [TOKENS.privateKey]: "key",
  [TOKENS.selfSignedCert]: "ca",
  [TOKENS.certRequest]: "csr",
  [TOKENS.locallySignedCert]: "cert",
  [TOKENS.randomString]: "random",
};

export interface ResourceKind {
  /** command, key, csr, cert, ca, random, component */
  type: string;
  /** the host the resource is for (its name ends in `-<host>`, or holds `-<host>-` for certificates), if any */
  host?: string;
  /** the name without the host: `workers-join`, `etcd-server-*-cert`, `pki-kubernetes-ca-cert` */
  kind: string;
}

/** Which host and step a resource key belongs to, given the cluster's host names. */
export function classify(key: string, hostNames: string[]): ResourceKind {
  const i = key.lastIndexOf("::");
  const type = key.slice(0, i);
  const name = key.slice(i + 2);
  const short = SHORT_TYPES[type] ?? (type.startsWith("hakube:") ? "component" : type);
  // the longest host name that ends the name, or sits inside it between dashes (per-host certificates)
  let host: string | undefined;
  for (const h of hostNames) {
    if ((name.endsWith(`-${h}`) || name.includes(`-${h}-`)) && (!host || h.length > host.length)) host = h;
  }
  const kind = host ? (name.endsWith(`-${host}`) ? name.slice(0, -host.length - 1) : name.replace(`-${host}-`, "-*-")) : name;
  return { type: short, ...(host ? { host } : {}), kind };
}

/** `3× command workers-join, 1× command lb-proxy`: the kinds of a set of resources, most frequent first. */
export function summarizeKinds(keys: string[], hostNames: string[]): string {
  const counts = new Map<string, number>();
  for (const k of keys) {
    const c = classify(k, hostNames);
    const label = `${c.type} ${c.kind}`;
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([l, n]) => `${n}× ${l}`)
    .join(", ");
}

/** Commands named for each host (`<component>-<step>-<host>`: its own chain, wherever the step runs). */
export function commandsPerHost(regs: Registration[], hostNames: string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(hostNames.map((h) => [h, 0]));
  for (const r of regs) {
    if (r.type !== TOKENS.command) continue;
    const h = classify(resourceKey(r), hostNames).host;
    if (h) out[h]++;
  }
  return out;
}
