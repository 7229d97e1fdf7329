/**
 * The outputs contract: what index.ts exports (names, value shapes, secretness) under mocks must
 * equal the committed snapshot test/fixtures/outputs.contract.json, and docs/outputs.md must
 * document every output with its type and secretness. Renaming an output, changing its type
 * or losing its secret flag fails here.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { readStackFile, ROOT, runProgram, TEST_SSH_KEY, valueOf, type RunResult } from "./harness/program";

type Shape = string | Shape[] | { [k: string]: Shape };

/** The JSON shape of a value: "string", "number", "boolean", "T[]" / [shape] for arrays, { key: shape } for objects. */
export function shapeOf(v: unknown): Shape {
  if (Array.isArray(v)) {
    const shapes = [...new Set(v.map((x) => JSON.stringify(shapeOf(x))))].map((s) => JSON.parse(s) as Shape);
    if (shapes.length !== 1) throw new Error(`array with ${shapes.length} element shapes: ${JSON.stringify(shapes)}`);
    return typeof shapes[0] === "string" ? `${shapes[0]}[]` : [shapes[0]];
  }
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shapeOf((v as Record<string, unknown>)[k])]));
  if (v === null) return "null";
  return typeof v;
}

const contract = JSON.parse(fs.readFileSync(path.join(ROOT, "test/fixtures/outputs.contract.json"), "utf8")).outputs as Record<string, { type: Shape; secret: boolean }>;

describe("outputs contract (snapshot)", () => {
  let r: RunResult;
  let actual: Record<string, { type: Shape; secret: boolean }>;
  beforeAll(async () => {
    r = await runProgram({ ...readStackFile("Pulumi.dev.yaml"), sshPrivateKey: TEST_SSH_KEY });
    if (r.error) throw r.error;
    actual = {};
    for (const name of Object.keys(r.outputs!).sort()) {
      const o = pulumi.output(r.outputs![name] as pulumi.Input<unknown>);
      actual[name] = { type: shapeOf(await valueOf(o)), secret: await pulumi.isSecret(o) };
    }
  });

  it("the program exports exactly the outputs of the snapshot, with their shapes and secretness", () => {
    expect(Object.keys(actual).sort(), "output names").toEqual(Object.keys(contract).sort());
    for (const [name, c] of Object.entries(contract)) {
      expect(actual[name].type, `${name}: type`).toEqual(c.type);
      expect(actual[name].secret, `${name}: secret`).toBe(c.secret);
    }
  });

  it("the shape function tells the changes apart (a renamed field, a number for a string, a flattened list)", () => {
    expect(shapeOf({ endpoint: "a", token: "b" })).not.toEqual(shapeOf({ endpoint: "a", tokenValue: "b" }));
    expect(shapeOf(["a"])).toBe("string[]");
    expect(shapeOf([1])).toBe("number[]");
    expect(shapeOf([{ a: ["x"] }])).toEqual([{ a: "string[]" }]);
    expect(() => shapeOf(["a", 1])).toThrow(/2 element shapes/);
  });

  it("docs/outputs.md documents every output with its type and whether it is secret", () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/outputs.md"), "utf8");
    const rows = new Map(
      doc
        .split("\n")
        .filter((l) => /^\| `[A-Za-z]+` \|/.test(l))
        .map((l) => {
          const cells = l.split("|").map((c) => c.trim());
          return [cells[1].replace(/`/g, ""), { type: cells[2], secret: cells[3] }] as const;
        }),
    );
    expect([...rows.keys()].sort()).toEqual(Object.keys(contract).sort());
    for (const [name, c] of Object.entries(contract)) {
      const row = rows.get(name)!;
      expect(row.secret, `${name}: secret column`).toBe(c.secret ? "**secret**" : "no");
      const type = typeof c.type === "string" ? c.type : Array.isArray(c.type) ? "object[]" : "object";
      expect(row.type, `${name}: type column`).toBe(`\`${type}\``);
      if (typeof c.type === "object") {
        const fields = Object.keys(Array.isArray(c.type) ? (c.type[0] as object) : c.type);
        const section = doc.slice(doc.indexOf(`### \`${name}\``));
        for (const f of fields) expect(section.slice(0, 1500), `${name}.${f} documented`).toContain(`\`${f}\``);
      }
    }
  });
});
