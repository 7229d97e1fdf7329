// The lab end-to-end suite (`npm run test:lab`, root only): real hosts (systemd-nspawn) on this
// machine, the program deployed onto them over SSH. One file per load-balancer engine; the files
// share the lab, so they run one after the other. See docs/lab.md.
import { defineConfig } from "vitest/config";

if (process.getuid?.() !== 0) {
  console.error("npm run test:lab: the lab suite must run as root (it boots systemd-nspawn hosts on a bridge): sudo npm run test:lab");
  process.exit(1);
}

export default defineConfig({
  test: {
    include: ["test/lab/**/*.test.ts"],
    // installs the lab's packages (and etcdctl) first, or fails saying why: never "34 skipped, exit 0"
    globalSetup: ["test/lab/global-setup.ts"],
    pool: "forks",
    isolate: true,
    fileParallelism: false,
    testTimeout: 10 * 60_000,
    hookTimeout: 20 * 60_000,
    reporters: ["verbose"],
  },
});
