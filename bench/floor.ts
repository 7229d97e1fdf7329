/**
 * The SDK's floor for the benchmarks: a program that registers as many resources as hakube
 * does — `HAKUBE_BENCH_FLOOR=CUSTOMS:COMPONENTS` bare custom resources (remote commands with a
 * one-word script, no connection, no dependencies, no outputs used) spread over that many
 * components — under the same mocks. What is left of hakube's time above this is ours.
 */
import * as pulumi from "@pulumi/pulumi";

const [customs, components] = (process.env.HAKUBE_BENCH_FLOOR ?? "0:0").split(":").map(Number);
const parents: pulumi.ComponentResource[] = [];
for (let i = 0; i < Math.max(1, components); i++) parents.push(new pulumi.ComponentResource("hakube:bench:Floor", `floor-${i}`, {}));
for (let i = 0; i < customs; i++) {
  new pulumi.CustomResource("command:remote:Command", `bare-${i}`, { create: "true" }, { parent: parents[i % parents.length] });
}
