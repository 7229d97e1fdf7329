/**
 * docs/operations.md quotes the failure texts the scripts print ("Troubleshooting by failed
 * step"). Every quoted text must still be in the components' scripts: each literal piece between
 * placeholders (`<…>`, `…`) of a quoted message is searched in the source of components/.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./harness/program";

function sources(dir: string): string {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .map((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith(".ts") ? fs.readFileSync(path.join(dir, e.name), "utf8") : ""))
    .join("\n");
}

/** The literal pieces of a quoted message (placeholders `<…>` and `…` removed), long enough to mean something. */
export function pieces(quote: string): string[] {
  return quote
    .replace(/^hakube: [^:]+: [^:]+(?: \(on [^)]*\))?: (health gate: )?/, "")
    .split(/<[^>]*>|…/)
    .map((s) => s.trim())
    .filter((s) => s.length >= 14);
}

const doc = fs.readFileSync(path.join(ROOT, "docs/operations.md"), "utf8");
// the per-step subsections (the introduction above them describes the format, not messages)
const section = doc.slice(doc.indexOf("### `preflight`"), doc.indexOf("### Before any step"));
const src = sources(path.join(ROOT, "components")).replace(/\\`/g, "`");

describe("docs/operations.md troubleshooting", () => {
  const quotes = [...section.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]).filter((q) => q.length >= 20).filter((q) => q.includes(" ") && !/^(journalctl|pulumi|kubectl|timedatectl)/.test(q));

  it("quotes many failure texts", () => {
    expect(quotes.length).toBeGreaterThan(30);
  });

  it("every quoted failure text is still printed by a script in components/", () => {
    const missing = quotes.flatMap((q) => pieces(q).filter((p) => !src.includes(p)).map((p) => `${p}   (in: ${q})`));
    expect(missing).toEqual([]);
  });

  it("the check notices a text no script prints", () => {
    expect(pieces("hakube: <host>: kubeadm: the flux capacitor is not charged (<n> GW)").filter((p) => !src.includes(p))).toEqual(["the flux capacitor is not charged ("]);
  });
});
