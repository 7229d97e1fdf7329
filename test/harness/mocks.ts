/**
 * Pulumi mocks that do the providers' work: real keys, certificates and random values
 * (./crypto.ts), and `command:remote:Command` handed to an executor (recorded only, or run
 * over SSH by the lab). Every registration is recorded with its inputs (secrets unwrapped)
 * and its raw inputs (secret envelopes kept).
 *
 * `ResourceState` plays the part of the stack's state: a resource registered again with the
 * same type, name and inputs gets the same outputs, as with an unchanged `pulumi up`.
 */
import * as pulumi from "@pulumi/pulumi";
import { certRequest, locallySignedCert, privateKey, randomString, selfSignedCert } from "./crypto";

export interface Registration {
  type: string;
  name: string;
  custom: boolean;
  parent?: string;
  /** inputs with secrets unwrapped */
  inputs: any;
  /** inputs as the engine sent them (secret envelopes kept) */
  rawInputs: any;
  outputs?: any;
  /** names of the resources it depends on (dependsOn and input data flow), when the monitor was attached */
  dependencies?: string[];
  error?: string;
  startMs: number;
  endMs?: number;
}

export interface CommandExecution {
  name: string;
  inputs: any;
}
/** Runs (or skips) one remote command; returns stdout/stderr, throws on failure. */
export type CommandExecutor = (c: CommandExecution) => Promise<{ stdout: string; stderr: string }>;

export const recordOnly: CommandExecutor = async () => ({ stdout: "", stderr: "" });

export type ResourceState = Map<string, Record<string, unknown>>;

export function unwrapSecrets(v: any): any {
  if (pulumi.runtime.isRpcSecret(v)) return unwrapSecrets(pulumi.runtime.unwrapRpcSecret(v));
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}

/** JSON with sorted keys, for state keys and comparisons. */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]])) : x,
  );
}

export const TOKENS = {
  privateKey: "tls:index/privateKey:PrivateKey",
  selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
  certRequest: "tls:index/certRequest:CertRequest",
  locallySignedCert: "tls:index/locallySignedCert:LocallySignedCert",
  randomString: "random:index/randomString:RandomString",
  command: "command:remote:Command",
  stackReference: "pulumi:pulumi:StackReference",
} as const;

/** Outputs the real providers mark secret (additionalSecretOutputs, ignored by the mock monitor). */
const SECRET_OUTPUTS: Record<string, string[]> = {
  [TOKENS.privateKey]: ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"],
};

export interface HarnessOptions {
  executor?: CommandExecutor;
  state?: ResourceState;
  /** Outputs of other stacks for `new pulumi.StackReference(name)`: name → outputs; secret ones listed in `secret`. */
  stackReferences?: Record<string, { outputs: Record<string, unknown>; secret?: string[] }>;
}

export interface Harness {
  mocks: pulumi.runtime.Mocks;
  registrations: Registration[];
  /** registrations of one type */
  ofType(type: string): Registration[];
  commands(): Registration[];
  failures(): Registration[];
  state: ResourceState;
  /** Record each registration's dependencies (call with `pulumi.runtime.getMonitor()` after setMocks). */
  attachMonitor(monitor: unknown): void;
}

/** The name part of a URN (`urn:pulumi:stack::project::type::name`). */
export function urnName(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

export function createHarness(opts: HarnessOptions = {}): Harness {
  const registrations: Registration[] = [];
  const state: ResourceState = opts.state ?? new Map();
  const executor = opts.executor ?? recordOnly;
  const t0 = Date.now();
  /** type::name → dependency names, captured from the RegisterResource request before the mock sees it */
  const pendingDeps = new Map<string, string[]>();

  async function realize(type: string, name: string, inputs: any): Promise<Record<string, unknown>> {
    switch (type) {
      case TOKENS.privateKey:
        return privateKey(inputs);
      case TOKENS.selfSignedCert:
        return selfSignedCert(inputs);
      case TOKENS.certRequest:
        return certRequest(inputs);
      case TOKENS.locallySignedCert:
        return locallySignedCert(inputs);
      case TOKENS.randomString:
        return { result: randomString(inputs) };
      case TOKENS.command:
        return executor({ name, inputs });
      case TOKENS.stackReference: {
        const ref = opts.stackReferences?.[inputs.name];
        if (!ref) throw new Error(`harness: no stack reference ${inputs.name}`);
        return { name: inputs.name, outputs: ref.outputs, secretOutputNames: ref.secret ?? [] };
      }
      default:
        throw new Error(`harness: no realizer for ${type}`);
    }
  }

  const mocks: pulumi.runtime.Mocks = {
    async newResource(args) {
      const inputs = unwrapSecrets(args.inputs);
      const reg: Registration = {
        type: args.type,
        name: args.name,
        custom: args.custom ?? false,
        inputs,
        rawInputs: args.inputs,
        startMs: Date.now() - t0,
        dependencies: pendingDeps.get(`${args.type}::${args.name}`),
      };
      registrations.push(reg);
      if (!args.custom) return { id: undefined, state: {} };
      const key = `${args.type}::${args.name}::${stableJson(inputs)}`;
      try {
        let out = state.get(key);
        if (!out) {
          out = await realize(args.type, args.name, inputs);
          state.set(key, out);
        }
        reg.outputs = out;
        reg.endMs = Date.now() - t0;
        const secretOut = Object.fromEntries(
          Object.entries(out).map(([k, v]) => [k, SECRET_OUTPUTS[args.type]?.includes(k) ? pulumi.secret(v) : v]),
        );
        return { id: `${args.name}-id`, state: { ...args.inputs, ...secretOut } };
      } catch (e) {
        reg.error = e instanceof Error ? e.message : String(e);
        reg.endMs = Date.now() - t0;
        throw e;
      }
    },
    call(args) {
      throw new Error(`harness: no invoke for ${args.token}`);
    },
  };

  function attachMonitor(monitor: unknown) {
    const m = monitor as { registerResource(req: any, cb: any): unknown };
    const original = m.registerResource.bind(m);
    m.registerResource = (req: any, cb: any) => {
      pendingDeps.set(`${req.getType()}::${req.getName()}`, (req.getDependenciesList() as string[]).map(urnName).sort());
      return original(req, cb);
    };
  }

  return {
    mocks,
    registrations,
    state,
    attachMonitor,
    ofType: (type) => registrations.filter((r) => r.type === type),
    commands: () => registrations.filter((r) => r.type === TOKENS.command),
    failures: () => registrations.filter((r) => r.error !== undefined),
  };
}
