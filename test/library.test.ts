/**
 * hakube as a library: `npm pack` the repository (prepack builds dist/ from components/), install
 * the tarball into a scratch program in a temp dir, type-check that program against the shipped
 * `.d.ts` (Pulumi's TypeScript template settings: CommonJS, node resolution) and evaluate it under
 * Pulumi's mock monitor in its own Node process.
 *
 * Installing: the tarball is unpacked into the scratch program's node_modules/hakube as npm does,
 * and its dependencies are linked to this repository's node_modules (`npm install --offline`
 * cannot resolve a fresh tree: `npm ci` caches tarballs, not the registry metadata).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./harness/program";

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });

interface Reg {
  type: string;
  name: string;
  inputs: Record<string, any>;
  secretConnection: boolean;
}

describe("the packed library in a scratch program", () => {
  let dir: string;
  let files: string[];
  let result: { outputs: Record<string, unknown>; registrations: Reg[] };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hakube-lib-"));
    const out = run("npm", ["pack", "--pack-destination", dir, "--json"], ROOT);
    const tarball = path.join(dir, JSON.parse(out.slice(out.indexOf("[")))[0].filename);
    files = run("tar", ["tzf", tarball], dir).split("\n").filter(Boolean);

    const app = path.join(dir, "app");
    const installed = path.join(app, "node_modules", "hakube");
    fs.mkdirSync(installed, { recursive: true });
    run("tar", ["xzf", tarball, "-C", installed, "--strip-components=1"], dir);
    const installedPkg = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8"));
    // the package's dependencies, and what a TypeScript Pulumi program has as devDependencies
    for (const dep of [...Object.keys(installedPkg.dependencies), "@types/node"]) {
      const link = path.join(app, "node_modules", dep);
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.symlinkSync(path.join(ROOT, "node_modules", dep), link);
    }
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "scratch", private: true, main: "index.ts", dependencies: { hakube: "file:../hakube.tgz", "@pulumi/pulumi": pkg.dependencies["@pulumi/pulumi"] } }));
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, outDir: "bin", target: "es2020", module: "commonjs", moduleResolution: "node", types: ["node"], skipLibCheck: true }, files: ["index.ts"] }),
    );
    fs.copyFileSync(path.join(ROOT, "test/library/consumer.ts"), path.join(app, "index.ts"));
    fs.copyFileSync(path.join(ROOT, "test/library/run.js"), path.join(app, "run.js"));
    run(path.join(ROOT, "node_modules/.bin/tsc"), ["-p", "."], app);
    result = JSON.parse(run("node", ["run.js", "./bin/index.js"], app));
  }, 240_000);

  it("ships the built library and its docs, not the program, the stacks or the tests", () => {
    expect(files).toContain("package/dist/components/index.js");
    expect(files).toContain("package/dist/components/index.d.ts");
    expect(files).toContain("package/dist/components/loadbalancer/render.js");
    expect(files).toContain("package/docs/outputs.md");
    // npm always packs the `main` file (index.ts, this repository's program; inert without components/ sources)
    expect(files.filter((f) => /^package\/(test|examples|components|Pulumi\.|tsconfig)/.test(f))).toEqual([]);
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual(["package/index.ts"]);
  });

  it("the scratch program composes a LoadBalancerPair alone: only its steps and the hosts' preflights", () => {
    const commands = result.registrations.filter((r) => r.type === "command:remote:Command").map((r) => r.name).sort();
    expect(commands).toEqual([
      "api-lb-keepalived-edge1", "api-lb-keepalived-edge2", "api-lb-packages-edge1", "api-lb-packages-edge2",
      "api-lb-proxy-edge1", "api-lb-proxy-edge2", "edge-preflight-edge1", "edge-preflight-edge2",
    ]);
    const components = result.registrations.filter((r) => r.type.startsWith("hakube:")).map((r) => `${r.type}::${r.name}`).sort();
    expect(components).toEqual(["hakube:lb:LoadBalancerPair::api-lb", "hakube:remote:Hosts::edge"]);
    expect(result.outputs).toEqual({ endpoint: "https://192.0.2.100:6443", lbHosts: ["edge1", "edge2"] });
  });

  it("the library's rendering works from the package: HAProxy forwards the VIP to the given API servers, SSH key secret", () => {
    const proxy = result.registrations.find((r) => r.name === "api-lb-proxy-edge1")!;
    expect(proxy.inputs.create).toContain("bind 0.0.0.0:6443");
    expect(proxy.inputs.create).toMatch(/server api1 192\.0\.2\.21:6443\n/);
    expect(proxy.inputs.create).toMatch(/server api2 192\.0\.2\.22:6443\n/);
    const keepalived = result.registrations.find((r) => r.name === "api-lb-keepalived-edge2")!;
    expect(keepalived.inputs.create).toContain("virtual_router_id 77");
    expect(keepalived.inputs.create).toContain("192.0.2.100/24");
    for (const r of result.registrations.filter((x) => x.type === "command:remote:Command")) {
      expect(r.secretConnection, r.name).toBe(true);
      expect(JSON.stringify(r.inputs.create)).not.toContain("SCRATCH-SSH-KEY");
    }
  });

  it("package.json: the library is a subpath export; no \".\" export, so Pulumi still runs index.ts as this program", () => {
    // @pulumi/pulumi's run.js takes exports["."] (or a string `exports`) as the program's entry point
    // when Pulumi.yaml has no `main`; without it, it loads the project directory's index.ts.
    expect(typeof pkg.exports).toBe("object");
    expect(Object.keys(pkg.exports)).not.toContain(".");
    expect(pkg.exports["./components"]).toEqual({ types: "./dist/components/index.d.ts", default: "./dist/components/index.js" });
    expect(pkg.main).toBe("index.ts");
  });
});
