/**
 * The program's own validation of a stack file, for the lab's topology check (topology.cjs):
 * prints {"problems": [...]} — every problem by key path, as `pulumi up` would report them —
 * with what the lab itself supplies filled in (the SSH key; host keys, so strictHostKeys is
 * not checked here). Exit 0 also when there are problems (topology.cjs merges and reports them).
 */
import { ConfigError, parseClusterSpec } from "../../components/config/spec";
import { projectDefaults, readStackFile, toCliConfig } from "../harness/program";

const file = process.argv[2];
if (!file) {
  console.error("usage: tsx test/lab/check-stack.ts STACK_FILE");
  process.exit(2);
}
const values: Record<string, string> = {};
for (const [k, v] of Object.entries(toCliConfig({ ...projectDefaults(), ...readStackFile(file) }))) if (k.startsWith("hakube:")) values[k.slice("hakube:".length)] = v;
values.sshPrivateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\n(the lab's key)\n-----END OPENSSH PRIVATE KEY-----\n";
values.strictHostKeys = "false";
let problems: string[] = [];
try {
  parseClusterSpec({ stackName: "lab", values, secretKeys: new Set(["sshPrivateKey"]) });
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  problems = e.problems;
}
process.stdout.write(JSON.stringify({ problems }) + "\n");
