/**
 * Reads the stack configuration through the Pulumi runtime and turns it into a `ClusterSpec`
 * (see `spec.ts`, which is pure). Fails before any resource is registered.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, NAMESPACE, parseClusterSpec, type ClusterSpec } from "./spec";

export * from "./spec";
export { portNeeds, portNeedsByHost } from "./ports";

/** Secret config keys as the CLI passes them (PULUMI_CONFIG_SECRET_KEYS), without namespace. */
function secretKeys(): Set<string> {
  const isSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  const keys = Object.keys(pulumi.runtime.allConfig()).filter((k) => k.startsWith(`${NAMESPACE}:`) && isSecret?.(k));
  return new Set(keys.map((k) => k.slice(NAMESPACE.length + 1)));
}

export interface LoadedSpec {
  spec: ClusterSpec;
  /** The SSH private key, secret. */
  sshPrivateKey: pulumi.Output<string>;
}

/** Read, validate and default the stack config; log warnings; throw one error naming every problem. */
export function loadClusterSpec(): LoadedSpec {
  const values: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(pulumi.runtime.allConfig())) {
    if (k.startsWith(`${NAMESPACE}:`)) values[k.slice(NAMESPACE.length + 1)] = v;
  }
  try {
    const { spec, warnings } = parseClusterSpec({ stackName: pulumi.getStack(), values, secretKeys: secretKeys() });
    for (const w of warnings) pulumi.log.warn(w);
    const sshPrivateKey = new pulumi.Config(NAMESPACE).requireSecret("sshPrivateKey");
    return { spec, sshPrivateKey };
  } catch (e) {
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}
