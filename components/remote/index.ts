/**
 * Remote steps: the one wrapper around `command.remote.Command` every component uses.
 *
 * - names children `${component}-${step}-${host}` and parents them to the component;
 * - applies the host's connection (secret SSH key, per-host user/port, `hostKey` when given);
 * - passes secret payloads on stdin only and then marks stdout/stderr secret;
 * - re-runs a step when its content changes (the content is in the command text, or in the
 *   secret stdin), never merely because of ordering;
 * - puts the host's preflight first in that host's chain.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { HostSpec } from "../config/spec";
import { renderPreflight, type PortNeed } from "./preflight";
import { encodeStdin, wrapScript } from "./shell";

export { shq, shqAll, putFile, putFileFromStdin } from "./shell";

export interface StepArgs {
  /** The host the step is for: its name keys the resource name and the failure messages. */
  host: HostSpec;
  /**
   * Run the step on this host instead (e.g. a control plane that drains `host`, or refreshes the
   * bootstrap token `host` joins with). The name stays `${component}-${step}-${host.name}`, so
   * changing which host acts does not replace the resource; messages read
   * `hakube: <host>: <step> (on <via>): …`.
   */
  via?: HostSpec;
  /** Step name: part of the resource name and of every failure message. */
  step: string;
  /** Bash body (plain values only: never derived from a secret; secrets go in `secrets`). */
  script: pulumi.Input<string>;
  /** Bash body run when the resource is deleted (destroy, or the host leaves the config). */
  deleteScript?: pulumi.Input<string>;
  /** Secret payloads, handed to the script on stdin; install them with `putFileFromStdin({ index })`. */
  secrets?: pulumi.Input<string>[];
  /** Extra ordering beyond the host's preflight (prefer data flow). */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export interface HostsArgs {
  /** Every host a step may run on (connections use `address`, `port`, `user`, `hostKey` when set). Names unique. */
  hosts: HostSpec[];
  /** The SSH private key (PEM or OpenSSH) that reaches every host; wrapped as a secret. Rotating it changes no script (docs/operations.md). */
  sshPrivateKey: pulumi.Input<string>;
  /** Ports each host must have free (or held by our own services), by host name: `portNeedsByHost(spec)`. A host without an entry checks no port. */
  ports: Record<string, PortNeed[]>;
  /** Validity starts (RFC 3339) of certificates every host trusts (the CAs): each preflight refuses a host clock before them. Default none. */
  certificateStarts?: pulumi.Input<string>[];
}

/**
 * The hosts of one cluster and the way to run steps on them. Each host's preflight is created
 * on first use; it checks the host clock against every certificate recorded for the host with
 * `certificateIssued` during the program's construction (recording one later throws).
 */
export class Hosts extends pulumi.ComponentResource {
  private readonly args: HostsArgs;
  private readonly preflights = new Map<string, command.remote.Command>();
  private readonly certStarts = new Map<string, pulumi.Input<string>[]>();
  private readonly names = new Set<string>();
  private readonly componentName: string;
  /** One secret Output of the SSH key for every connection (not one per command). */
  private readonly sshKey: pulumi.Output<string>;
  private constructionDone?: Promise<void>;
  private sealed = false;

  constructor(name: string, args: HostsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hakube:remote:Hosts", name, {}, opts);
    this.componentName = name;
    this.args = args;
    this.sshKey = pulumi.secret(args.sshPrivateKey);
    this.registerOutputs({});
  }

  /** The connection settings for a host. */
  connection(host: HostSpec): command.types.input.remote.ConnectionArgs {
    return {
      host: host.address,
      port: host.port,
      user: host.user,
      privateKey: this.sshKey,
      ...(host.hostKey ? { hostKey: host.hostKey } : {}),
    };
  }

  /**
   * Record a certificate issued for `host` so its preflight checks the host clock against it.
   * Call it while the program is being constructed (synchronously, not inside an `apply`): the
   * preflights read the recorded starts once the program's synchronous construction is done.
   */
  certificateIssued(host: HostSpec, validityStartTime: pulumi.Input<string>): void {
    if (this.sealed)
      throw new Error(`hakube: ${host.name}: a certificate was recorded after the preflights read them; record certificates while constructing the program`);
    this.certStarts.set(host.name, [...(this.certStarts.get(host.name) ?? []), validityStartTime]);
  }

  /** Resolves once the synchronous construction of the program is over (every certificate is recorded). */
  private construction(): Promise<void> {
    this.constructionDone ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.sealed = true;
        resolve();
      }),
    );
    return this.constructionDone;
  }

  /** The host's preflight (created on first use). */
  preflight(host: HostSpec): command.remote.Command {
    let p = this.preflights.get(host.name);
    if (!p) {
      const script = pulumi
        .output(this.construction().then(() => true))
        .apply(() => pulumi.all([...(this.args.certificateStarts ?? []), ...(this.certStarts.get(host.name) ?? [])]))
        .apply((s) => renderPreflight({ host: host.name, roles: host.roles, ports: this.args.ports[host.name] ?? [], certificateStarts: s }));
      p = this.command(this, this.componentName, { host, step: "preflight", script }, []);
      this.preflights.set(host.name, p);
    }
    return p;
  }

  /** A step on a host (or on `args.via`), after that host's preflight. */
  step(component: pulumi.ComponentResource, componentName: string, args: StepArgs): command.remote.Command {
    return this.command(component, componentName, args, [this.preflight(args.via ?? args.host)]);
  }

  private command(
    parent: pulumi.Resource,
    componentName: string,
    a: StepArgs,
    gate: pulumi.Resource[],
  ): command.remote.Command {
    const name = `${componentName}-${a.step}-${a.host.name}`;
    if (this.names.has(name)) throw new Error(`hakube: duplicate step ${name}`);
    this.names.add(name);
    const secretCount = a.secrets?.length ?? 0;
    const target = a.via ?? a.host;
    const label = a.via ? `${a.step} (on ${a.via.name})` : a.step;
    const wrap = (body: string) =>
      wrapScript({ host: a.host.name, step: label, user: target.user, body, stdinItems: secretCount || undefined });
    const stdin = secretCount ? pulumi.secret(pulumi.all(a.secrets!).apply(encodeStdin)) : undefined;
    const wrapDelete = (b: string) => wrapScript({ host: a.host.name, step: `${label} (delete)`, user: target.user, body: b });
    // plain scripts are wrapped right away: an Output and an apply per script only when the script is one
    return new command.remote.Command(
      name,
      {
        connection: this.connection(target),
        create: typeof a.script === "string" ? wrap(a.script) : pulumi.output(a.script).apply(wrap),
        ...(a.deleteScript !== undefined
          ? { delete: typeof a.deleteScript === "string" ? wrapDelete(a.deleteScript) : pulumi.output(a.deleteScript).apply(wrapDelete) }
          : {}),
        ...(stdin ? { stdin, logging: "stderr" as const } : {}),
        addPreviousOutputInEnv: false,
      },
      {
        parent,
        dependsOn: [...gate, ...(a.dependsOn ?? [])],
        ...(stdin ? { additionalSecretOutputs: ["stdout", "stderr"] } : {}),
      },
    );
  }
}
