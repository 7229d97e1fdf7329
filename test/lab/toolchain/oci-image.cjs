#!/usr/bin/env node
// OCI images without Docker or a registry to pull from: layers are plain tar files (built
// reproducibly by images.sh), the config and manifest are written here with fixed times, so the
// same inputs give the same digests.
//
//   oci-image.cjs build OUTDIR --layer FILE.tar[.gz]… [--entrypoint JSON] [--cmd JSON] [--env K=V]… [--user U] [--workdir D]
//       writes an OCI image layout (oci-layout, index.json, blobs/sha256/…) of one linux/amd64 image
//   oci-image.cjs push LAYOUTDIR HOST:PORT/REPO:TAG [--plain-http]
//       pushes it with the distribution API (blobs only when missing), prints the manifest digest
//   oci-image.cjs digest LAYOUTDIR        prints the manifest digest
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const zlib = require("node:zlib");

const MT = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};
const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
const die = (msg) => { console.error(`oci-image: ${msg}`); process.exit(1); };

function writeBlob(dir, buf) {
  const d = sha256(buf);
  const p = path.join(dir, "blobs", "sha256", d);
  if (!fs.existsSync(p)) fs.writeFileSync(p, buf);
  return { digest: `sha256:${d}`, size: buf.length };
}

function build(out, args) {
  const layers = []; const env = []; let entrypoint, cmd, user, workdir;
  for (let i = 0; i < args.length; i++) {
    const a = args[i], v = args[i + 1];
    if (a === "--layer") { layers.push(v); i++; }
    else if (a === "--env") { env.push(v); i++; }
    else if (a === "--entrypoint") { entrypoint = JSON.parse(v); i++; }
    else if (a === "--cmd") { cmd = JSON.parse(v); i++; }
    else if (a === "--user") { user = v; i++; }
    else if (a === "--workdir") { workdir = v; i++; }
    else die(`unknown option ${a}`);
  }
  if (layers.length === 0) die("build needs at least one --layer");
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, "blobs", "sha256"), { recursive: true });
  const descs = []; const diffIds = [];
  for (const f of layers) {
    const raw = fs.readFileSync(f);
    const isGz = raw[0] === 0x1f && raw[1] === 0x8b;
    const tar = isGz ? zlib.gunzipSync(raw) : raw;
    // gzip without a name or time in its header: the compressed bytes depend only on the tar
    const gz = isGz ? raw : zlib.gzipSync(tar, { level: 9 });
    diffIds.push(`sha256:${sha256(tar)}`);
    descs.push({ mediaType: MT.layer, ...writeBlob(out, gz) });
  }
  const config = {
    created: "1970-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: {
      Env: env.length ? env : ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      ...(entrypoint ? { Entrypoint: entrypoint } : {}),
      ...(cmd ? { Cmd: cmd } : {}),
      ...(user ? { User: user } : {}),
      ...(workdir ? { WorkingDir: workdir } : {}),
    },
    rootfs: { type: "layers", diff_ids: diffIds },
    history: layers.map((f) => ({ created: "1970-01-01T00:00:00Z", created_by: `hakube lab: ${path.basename(f)}` })),
  };
  const cfg = writeBlob(out, Buffer.from(JSON.stringify(config)));
  const manifest = { schemaVersion: 2, mediaType: MT.manifest, config: { mediaType: MT.config, ...cfg }, layers: descs };
  const man = writeBlob(out, Buffer.from(JSON.stringify(manifest)));
  const index = { schemaVersion: 2, mediaType: MT.index, manifests: [{ mediaType: MT.manifest, ...man, platform: { architecture: "amd64", os: "linux" } }] };
  fs.writeFileSync(path.join(out, "index.json"), JSON.stringify(index));
  fs.writeFileSync(path.join(out, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  console.log(man.digest);
}

function readLayout(dir) {
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
  const m = index.manifests[0];
  const blob = (d) => fs.readFileSync(path.join(dir, "blobs", "sha256", d.replace(/^sha256:/, "")));
  const manifestBuf = blob(m.digest);
  return { digest: m.digest, manifestBuf, manifest: JSON.parse(manifestBuf.toString("utf8")), blob };
}

async function push(dir, ref, plain) {
  const mm = /^([^/]+)\/(.+):([^:/]+)$/.exec(ref);
  if (!mm) die(`push: ${ref} is not HOST[:PORT]/REPO:TAG`);
  const [, host, repo, tag] = mm;
  const base = `${plain ? "http" : "https"}://${host}/v2/${repo}`;
  const { digest, manifestBuf, manifest, blob } = readLayout(dir);
  for (const d of [manifest.config, ...manifest.layers]) {
    const head = await fetch(`${base}/blobs/${d.digest}`, { method: "HEAD" });
    if (head.ok) continue;
    const start = await fetch(`${base}/blobs/uploads/`, { method: "POST" });
    if (start.status !== 202) die(`push ${ref}: starting an upload: HTTP ${start.status} ${await start.text()}`);
    const loc = new URL(start.headers.get("location"), `${plain ? "http" : "https"}://${host}`);
    loc.searchParams.set("digest", d.digest);
    const put = await fetch(loc, { method: "PUT", body: blob(d.digest), headers: { "content-type": "application/octet-stream" } });
    if (put.status !== 201) die(`push ${ref}: blob ${d.digest}: HTTP ${put.status} ${await put.text()}`);
  }
  const put = await fetch(`${base}/manifests/${tag}`, { method: "PUT", body: manifestBuf, headers: { "content-type": MT.manifest } });
  if (put.status !== 201) die(`push ${ref}: manifest: HTTP ${put.status} ${await put.text()}`);
  const got = put.headers.get("docker-content-digest");
  if (got && got !== digest) die(`push ${ref}: the registry stored ${got}, expected ${digest}`);
  console.log(`${ref} ${digest}`);
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === "build") build(rest[0], rest.slice(1));
else if (cmd === "push") push(rest[0], rest[1], rest.includes("--plain-http")).catch((e) => die(`push ${rest[1]}: ${e.message}`));
else if (cmd === "digest") console.log(readLayout(rest[0]).digest);
else die("usage: oci-image.cjs build|push|digest …");
