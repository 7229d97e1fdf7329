// Evaluates the compiled scratch program under Pulumi's mock monitor, with the scratch
// directory's own @pulumi/pulumi (the one the packed library resolves), and prints what was
// registered as JSON. Plain JavaScript: it runs with `node`, outside vitest and the repo.
const pulumi = require("@pulumi/pulumi");
const registrations = [];
pulumi.runtime.setMocks(
  {
    newResource(args) {
      registrations.push({ type: args.type, name: args.name, inputs: args.inputs, secretConnection: JSON.stringify(args.inputs.connection ?? null).includes("4dabf18193072939515e22adb298388d") });
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call(args) {
      throw new Error(`no invoke ${args.token}`);
    },
  },
  "scratch",
  "dev",
);
(async () => {
  const outputs = require(process.argv[2]);
  const resolved = {};
  for (const [k, v] of Object.entries(outputs)) resolved[k] = await new Promise((r) => pulumi.output(v).apply((x) => (r(x), x)));
  await pulumi.runtime.waitForRPCs?.();
  process.stdout.write(JSON.stringify({ outputs: resolved, registrations }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
