#!/usr/bin/env node
// The lab's CNI manifest: flannel's own kube-flannel.yml (from its Go module) with exactly these
// changes, each checked to have happened:
//   1. the flanneld image → the lab registry (same repository path and tag as upstream's ghcr.io one);
//   2. the CNI-plugin init image → the lab registry's build of the flannel CNI plugin, tagged with
//      the version it really is (containernetworking/plugins vX: flannel-io/cni-plugin is not
//      served by the Go module proxy);
//   3. the CNI config's cniVersion 1.0.0 → 0.4.0, the newest spec that plugin speaks.
// usage: flannel-manifest.cjs KUBE-FLANNEL.YML REGISTRY FLANNEL_VERSION CNI_PLUGIN_VERSION
"use strict";
const fs = require("node:fs");
const [file, registry, flannel, plugin] = process.argv.slice(2);
let s = fs.readFileSync(file, "utf8");
const swap = (re, to, what) => {
  const n = (s.match(re) || []).length;
  if (n === 0) { console.error(`flannel-manifest: ${what} not found in ${file}`); process.exit(1); }
  s = s.replace(re, to);
};
swap(new RegExp(`ghcr\\.io/flannel-io/flannel:v${flannel.replace(/\./g, "\\.")}\\b`, "g"), `${registry}/flannel-io/flannel:v${flannel}`, `image ghcr.io/flannel-io/flannel:v${flannel}`);
swap(/ghcr\.io\/flannel-io\/flannel-cni-plugin:\S+/g, `${registry}/hakube-lab/flannel-cni-plugin:v${plugin}`, "the flannel-cni-plugin image");
swap(/"cniVersion": "1\.0\.0"/g, '"cniVersion": "0.4.0"', 'cniVersion "1.0.0"');
if (/ghcr\.io|docker\.io|quay\.io/.test(s)) { console.error("flannel-manifest: an image outside the lab registry remains"); process.exit(1); }
process.stdout.write(s);
