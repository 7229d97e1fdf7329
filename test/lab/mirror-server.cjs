#!/usr/bin/env node
// The lab's file mirror: a read-only static HTTP server for one directory (GET and HEAD, byte
// ranges for apt's resumed downloads, directory listings), bound to one address.
// usage: mirror-server.cjs ROOT ADDRESS PORT
"use strict";
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");

const [rootArg, address, port] = process.argv.slice(2);
if (!rootArg || !address || !port) { console.error("usage: mirror-server.cjs ROOT ADDRESS PORT"); process.exit(2); }
const root = fs.realpathSync(rootArg);
const types = { ".gz": "application/gzip", ".tgz": "application/gzip", ".deb": "application/vnd.debian.binary-package", ".yml": "text/yaml", ".yaml": "text/yaml", ".key": "application/pgp-keys" };

const server = http.createServer((req, res) => {
  if (req.method !== "GET" && req.method !== "HEAD") { res.writeHead(405, { allow: "GET, HEAD" }).end(); return; }
  let rel;
  try { rel = decodeURIComponent(new URL(req.url, "http://mirror").pathname); } catch { res.writeHead(400).end(); return; }
  const file = path.join(root, path.normalize(rel));
  if (file !== root && !file.startsWith(root + path.sep)) { res.writeHead(403).end(); return; }
  fs.stat(file, (err, st) => {
    if (err) { res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${rel}\n`); return; }
    if (st.isDirectory()) {
      const body = fs.readdirSync(file).sort().map((n) => `${n}${fs.statSync(path.join(file, n)).isDirectory() ? "/" : ""}`).join("\n") + "\n";
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) }).end(req.method === "HEAD" ? undefined : body);
      return;
    }
    const headers = { "content-type": types[path.extname(file)] ?? "application/octet-stream", "accept-ranges": "bytes", "last-modified": st.mtime.toUTCString() };
    let start = 0, end = st.size - 1, status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
    if (range && (range[1] || range[2])) {
      start = range[1] ? Number(range[1]) : Math.max(0, st.size - Number(range[2]));
      end = range[1] && range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
      if (start > end || start >= st.size) { res.writeHead(416, { "content-range": `bytes */${st.size}` }).end(); return; }
      status = 206; headers["content-range"] = `bytes ${start}-${end}/${st.size}`;
    }
    headers["content-length"] = st.size === 0 ? 0 : end - start + 1;
    res.writeHead(status, headers);
    if (req.method === "HEAD" || st.size === 0) { res.end(); return; }
    fs.createReadStream(file, { start, end }).pipe(res);
  });
});
server.listen(Number(port), address, () => console.log(`mirror: serving ${root} on http://${address}:${port}/`));
for (const s of ["SIGTERM", "SIGINT"]) process.on(s, () => server.close(() => process.exit(0)));
