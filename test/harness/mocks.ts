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
  /** the parent's URN */
  parent?: string;
  /** the provider reference (`urn::id`) when the resource names one explicitly */
  provider?: string;
  /** names of the resources this one depends on (dependsOn and data), from the engine request */
  dependencies: string[];
  /** inputs with secrets unwrapped */
  inputs: any;
  /** inputs as the engine sent them (secret envelopes kept) */
  rawInputs: any;
  outputs?: any;
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
  /** Other providers' resource types the mocks accept as they are (outputs = inputs), e.g. `kubernetes:*` in an example. */
  passThrough?: (type: string) => boolean;
}

export interface Harness {
  mocks: pulumi.runtime.Mocks;
  /** Call after setMocks: records each registration's parent and dependencies (the mock API omits them). */
  attach(): void;
  registrations: Registration[];
  /** registrations of one type */
  ofType(type: string): Registration[];
  commands(): Registration[];
  failures(): Registration[];
  state: ResourceState;
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
  /** type::name → parent and dependency names, captured from the RegisterResource request before the mock sees it */
  const requests = new Map<string, { parent: string; dependencies: string[] }>();

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
        if (opts.passThrough?.(type)) return { ...inputs };
        throw new Error(`harness: no realizer for ${type}`);
    }
  }

  const mocks: pulumi.runtime.Mocks = {
    async newResource(args) {
      const inputs = unwrapSecrets(args.inputs);
      const req = requests.get(`${args.type}::${args.name}`);
      const reg: Registration = {
        type: args.type,
        name: args.name,
        custom: args.custom ?? false,
        ...(req?.parent ? { parent: req.parent } : {}),
        ...(args.provider ? { provider: args.provider } : {}),
        dependencies: req?.dependencies ?? [],
        inputs,
        rawInputs: args.inputs,
        startMs: Date.now() - t0,
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

  function attach() {
    const monitor = pulumi.runtime.getMonitor() as unknown as {
      registerResource(req: any, cb: unknown): unknown;
      __hakubeAttached?: boolean;
    };
    if (!monitor || monitor.__hakubeAttached) return;
    const original = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, cb: unknown) => {
      const deps = new Set<string>([...req.getDependenciesList()]);
      req.getPropertydependenciesMap().forEach((v: any) => v.getUrnsList().forEach((u: string) => deps.add(u)));
      requests.set(`${req.getType()}::${req.getName()}`, { parent: req.getParent(), dependencies: [...deps].map(urnName).sort() });
      return original(req, cb);
    };
    monitor.__hakubeAttached = true;
  }

  return {
    mocks,
    attach,
    registrations,
    state,
    ofType: (type) => registrations.filter((r) => r.type === type),
    commands: () => registrations.filter((r) => r.type === TOKENS.command),
    failures: () => registrations.filter((r) => r.error !== undefined),
  };
}
