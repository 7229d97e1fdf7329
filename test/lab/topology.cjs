#!/usr/bin/env node
// hakube lab: read the topology from a Pulumi stack file and write the lab's stack config.
//
//   node topology.cjs hosts  STACK_FILE --net 10.123.0.0/24 --gateway 10.123.0.1 \
//                            --machine-prefix hk- --max-machine-name 12 --interface host0
//       validates the topology against the lab network and prints TSV lines:
//         host<TAB>name<TAB>address<TAB>roles(comma separated)
//         vip<TAB>address-or-empty<TAB>interface-or-empty<TAB>port (hakube:loadBalancer.port, 6443)
//   node topology.cjs config STACK_FILE LAB_DIR
//       writes LAB_DIR/stack-config.json and LAB_DIR/known_hosts from the stack's hosts and
//       the host keys in LAB_DIR/hostkeys/<name>.pub and the key LAB_DIR/keys/id_ed25519.
//   node topology.cjs stack-file STACK_FILE LAB_DIR OUT [--engine E]
//       writes the lab's Pulumi stack file OUT (Pulumi.lab.yaml) for `lab deploy` with the CLI.
//
// The YAML is read with the project's `yaml` package (resolved from the repository root).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');

// Stacks of other projects the lab site also runs, whose hosts the lab boots too: the
// examples/worker-pool stack joins the dev cluster by StackReference (test/lab/cluster.test.ts).
// Their hosts are marked in topology.tsv with the role word `mark` (not a hakube role: the dev
// stack's tests do not see them as its workers).
// They belong to the dev stack (Pulumi.dev.yaml): a lab booted from another stack file (the site
// test's, a bench topology) has none.
const COMPANIONS = [{ file: path.join(REPO, 'examples', 'worker-pool', 'Pulumi.dev.yaml'), namespace: 'workerPool', mark: 'workerpool', out: 'stack-config-worker-pool.json' }];
const companionsOf = (stackFile) => (path.resolve(stackFile) === path.join(REPO, 'Pulumi.dev.yaml') ? COMPANIONS : []);

function companionHosts(c) {
  if (!fs.existsSync(c.file)) return [];
  const hosts = readStack(c.file)[`${c.namespace}:hosts`];
  if (!Array.isArray(hosts)) fail(`${c.file}: '${c.namespace}:hosts' must be a list`);
  return hosts;
}

function fail(msg) {
  process.stderr.write(`lab: topology: ${msg}\n`);
  process.exit(2);
}

function loadYaml() {
  try {
    return require(require.resolve('yaml', { paths: [REPO, process.cwd()] }));
  } catch {
    fail(`the 'yaml' npm package is not installed: run 'npm ci' in ${REPO}`);
  }
}

function readStack(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read stack file ${file}: ${e.message}`);
  }
  let doc;
  try {
    doc = loadYaml().parse(text);
  } catch (e) {
    fail(`${file}: invalid YAML: ${e.message}`);
  }
  const config = doc && doc.config;
  if (!config || typeof config !== 'object') fail(`${file}: no 'config' mapping`);
  return config;
}

function ipToInt(ip) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(String(ip));
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) fail(`bad option ${argv[i]}`);
    opts[argv[i].slice(2)] = argv[i + 1];
  }
  return opts;
}

function hostsOf(config, file) {
  const hosts = config['hakube:hosts'];
  if (!Array.isArray(hosts) || hosts.length === 0) fail(`${file}: 'hakube:hosts' must be a non-empty list`);
  hosts.forEach((h, i) => {
    if (!h || typeof h !== 'object' || Array.isArray(h)) fail(`${file}: hakube:hosts[${i}] is not a mapping`);
  });
  return hosts;
}

// The program's own validation of the stack file (components/config through test/lab/check-stack.ts):
// every problem by key path, as `pulumi up` reports them. null when tsx is not installed.
function programProblems(file) {
  const tsx = path.join(REPO, 'node_modules', '.bin', 'tsx');
  if (!fs.existsSync(tsx)) return null;
  const r = require('node:child_process').spawnSync(tsx, [path.join(__dirname, 'check-stack.ts'), path.resolve(file)],
    { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) fail(`checking ${file} with the program's validation failed:\n${(r.stderr || '').trim()}`);
  return JSON.parse(r.stdout).problems;
}

// Validate the topology against the lab network. Every problem is reported at once, in the
// program's `invalid stack configuration (N problems)` form: the program's own problems first,
// then the lab's (a key path the program already complained about is not repeated).
function cmdHosts(file, opts) {
  const config = readStack(file);
  const [netAddr, bitsStr] = String(opts.net || '').split('/');
  const bits = Number(bitsStr);
  const net = ipToInt(netAddr);
  if (net === null || !(bits >= 8 && bits <= 30)) fail(`bad --net ${opts.net}`);
  const mask = (0xffffffff << (32 - bits)) >>> 0;
  const bcast = (net | ~mask) >>> 0;
  const gw = ipToInt(opts.gateway);
  const prefix = opts['machine-prefix'] || '';
  const maxLen = Number(opts['max-machine-name'] || 12);
  const inNet = (a) => ((a & mask) >>> 0) === net;

  const lab = [];   // [keyPath, message]
  const add = (key, msg) => lab.push([key, msg]);
  const hosts = Array.isArray(config['hakube:hosts']) ? config['hakube:hosts'] : [];
  if (!Array.isArray(config['hakube:hosts']) || hosts.length === 0) add('hakube:hosts', 'must be a non-empty list (the lab boots one host per entry)');
  const names = new Map();
  const addrs = new Map();
  const out = [];
  const all = hosts.map((h, i) => ({ h, where: `hakube:hosts[${i}]`, mark: undefined }));
  for (const c of companionsOf(file)) companionHosts(c).forEach((h, i) => all.push({ h, where: `${path.relative(REPO, c.file)}: ${c.namespace}:hosts[${i}]`, mark: c.mark }));
  all.forEach(({ h, where, mark }) => {
    if (!h || typeof h !== 'object' || Array.isArray(h)) { add(where, 'is not a mapping'); return; }
    const name = h.name;
    let ok = true;
    if (typeof name !== 'string' || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) {
      add(`${where}.name`, `${JSON.stringify(name)} must be lower-case letters, digits and '-'`); ok = false;
    } else if (names.has(name)) {
      add(`${where}.name`, `${JSON.stringify(name)} is already used by ${names.get(name)}`); ok = false;
    } else {
      names.set(name, where);
      const machine = prefix + name;
      if (machine.length > maxLen) {
        add(`${where}.name`, `${JSON.stringify(name)}: the lab's machine name ${machine} is ${machine.length} characters; at most ${maxLen} ` +
          `(the host-side veth 'vb-${machine}' must fit in 15): shorten the host name to ${maxLen - prefix.length} characters`);
      }
    }
    const a = ipToInt(h.address);
    if (a === null) { add(`${where}.address`, `${JSON.stringify(h.address)} is not an IPv4 address (lab hosts have IPv4 addresses on the bridge)`); ok = false; }
    else if (!inNet(a)) {
      add(`${where}.address`, `${h.address} is outside the lab bridge network ${opts.net} (gateway ${opts.gateway}): the lab can only boot hosts there`); ok = false;
    } else if (a === net || a === bcast || a === gw) {
      add(`${where}.address`, `${h.address} is the network, broadcast or gateway address of the lab network ${opts.net}`); ok = false;
    } else if (addrs.has(a)) {
      add(`${where}.address`, `${h.address} is already used by ${addrs.get(a)}`); ok = false;
    } else addrs.set(a, typeof name === 'string' ? name : where);
    const roles = h.roles === undefined ? [] : h.roles;
    if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string' || /[\s,]/.test(r))) { add(`${where}.roles`, 'must be a list of words'); ok = false; }
    if (ok) out.push(['host', name, h.address, mark ?? roles.join(',')].join('\t'));
  });

  const lb = config['hakube:loadBalancer'] || {};
  let vip = '';
  if (lb.vip !== undefined) {
    const v = ipToInt(lb.vip);
    if (v === null) add('hakube:loadBalancer.vip', `${JSON.stringify(lb.vip)} is not an IPv4 address`);
    else if (!inNet(v) || v === net || v === bcast || v === gw) add('hakube:loadBalancer.vip', `${lb.vip} must be a free address in the lab network ${opts.net}`);
    else if (addrs.has(v)) add('hakube:loadBalancer.vip', `${lb.vip} is also the address of ${addrs.get(v)}`);
    else vip = lb.vip;
  }
  if (lb.interface !== undefined && opts.interface && lb.interface !== opts.interface) {
    add('hakube:loadBalancer.interface', `is ${JSON.stringify(lb.interface)}, but lab hosts have one interface named ${opts.interface}`);
  }

  const program = programProblems(file);
  const keyOf = (p) => p.slice(0, p.indexOf(': ') >= 0 ? p.indexOf(': ') : p.length);
  const programKeys = new Set((program || []).map(keyOf));
  const problems = [...(program || []), ...lab.filter(([k]) => !programKeys.has(k)).map(([k, m]) => `${k}: ${m} (lab)`)];
  if (problems.length) {
    process.stderr.write(`lab: ${file}: invalid stack configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
      problems.map((p) => `  - ${p}\n`).join('') +
      (program === null ? "  (the program's own validation did not run: node_modules/.bin/tsx is missing; run 'npm ci')\n" : ''));
    process.exit(2);
  }
  out.push(['vip', vip, lb.interface || '', lb.port === undefined ? 6443 : lb.port].join('\t'));
  process.stdout.write(out.join('\n') + '\n');
}

function cmdConfig(file, labDir) {
  const config = readStack(file);
  const hosts = hostsOf(config, file);
  const keyLine = (name) => {
    const p = path.join(labDir, 'hostkeys', `${name}.pub`);
    let text;
    try {
      text = fs.readFileSync(p, 'utf8').trim();
    } catch (e) {
      fail(`host key of ${name} missing: ${e.message}`);
    }
    const [type, blob] = text.split(/\s+/);
    if (type !== 'ssh-ed25519' || !blob) fail(`${p}: not an ssh-ed25519 public key`);
    return `${type} ${blob}`;
  };
  const withKeys = hosts.map((h) => ({ ...h, hostKey: keyLine(h.name) }));
  const companions = companionsOf(file).map((c) => ({ c, hosts: companionHosts(c).map((h) => ({ ...h, hostKey: keyLine(h.name) })) }));
  let privateKey;
  try {
    privateKey = fs.readFileSync(path.join(labDir, 'keys', 'id_ed25519'), 'utf8');
  } catch (e) {
    fail(`lab SSH key missing: ${e.message}`);
  }
  // Values exactly as the Pulumi CLI hands config to a program (PULUMI_CONFIG): every value a
  // string, structured values as JSON text.
  const stackConfig = {
    'hakube:hosts': JSON.stringify(withKeys),
    'hakube:strictHostKeys': 'true',
    'hakube:sshPrivateKey': privateKey,
  };
  const write = (name, text, mode) => {
    const p = path.join(labDir, name);
    fs.writeFileSync(`${p}.tmp`, text, { mode });
    fs.chmodSync(`${p}.tmp`, mode);
    fs.renameSync(`${p}.tmp`, p);
  };
  write('stack-config.json', JSON.stringify(stackConfig, null, 2) + '\n', 0o600);
  for (const { c, hosts: ch } of companions) {
    if (!ch.length) continue;
    const values = { [`${c.namespace}:hosts`]: JSON.stringify(ch), [`${c.namespace}:sshPrivateKey`]: privateKey };
    // a control plane of the cluster the companion stack may SSH to: with its (dev host's) key
    const cp = readStack(c.file)[`${c.namespace}:controlPlane`];
    if (cp && typeof cp === 'object') values[`${c.namespace}:controlPlane`] = JSON.stringify({ ...cp, hostKey: keyLine(cp.name) });
    write(c.out, JSON.stringify(values, null, 2) + '\n', 0o600);
  }
  write('known_hosts', [...withKeys, ...companions.flatMap((x) => x.hosts)].map((h) => `${h.address} ${h.hostKey}`).join('\n') + '\n', 0o644);
}

// The lab's Pulumi stack file (Pulumi.lab.yaml): the stack file's config, every host with its lab
// host key, strictHostKeys on, optionally another load-balancer engine. Lines the Pulumi CLI keeps
// in that file (encryptionsalt, secretsprovider, encryptedkey) and the secret SSH key set with
// `pulumi config set --secret` are kept from the existing file.
function cmdStackFile(file, labDir, out, opts) {
  const YAML = loadYaml();
  const config = { ...readStack(file) };
  const lab = JSON.parse(fs.readFileSync(path.join(labDir, 'stack-config.json'), 'utf8'));
  config['hakube:hosts'] = JSON.parse(lab['hakube:hosts']);
  config['hakube:strictHostKeys'] = true;
  if (opts.engine) config['hakube:loadBalancer'] = { ...(config['hakube:loadBalancer'] || {}), engine: opts.engine };
  let doc = {};
  if (fs.existsSync(out)) {
    try {
      doc = YAML.parse(fs.readFileSync(out, 'utf8')) || {};
    } catch (e) {
      fail(`${out}: invalid YAML (${e.message}); remove it and run the deploy again`);
    }
  }
  const kept = doc.config && doc.config['hakube:sshPrivateKey'];
  if (kept && typeof kept === 'object' && kept.secure) config['hakube:sshPrivateKey'] = kept;
  const next = {};
  for (const k of ['secretsprovider', 'encryptedkey', 'encryptionsalt']) if (doc[k] !== undefined) next[k] = doc[k];
  next.config = config;
  const head = '# Generated by `lab deploy` from ' + path.basename(file) + ' and the lab\'s host keys. Not in git.\n';
  fs.writeFileSync(`${out}.tmp`, head + YAML.stringify(next, { lineWidth: 0 }), { mode: 0o600 });
  fs.renameSync(`${out}.tmp`, out);
}

const [cmd, file, ...rest] = process.argv.slice(2);
if (cmd === 'hosts' && file) cmdHosts(file, parseArgs(rest));
else if (cmd === 'config' && file && rest.length === 1) cmdConfig(file, rest[0]);
else if (cmd === 'stack-file' && file && rest.length >= 2) cmdStackFile(file, rest[0], rest[1], parseArgs(rest.slice(2)));
else fail('usage: topology.cjs hosts STACK_FILE [--net N/B --gateway IP --machine-prefix P ' +
  '--max-machine-name N --interface IF] | topology.cjs config STACK_FILE LAB_DIR | ' +
  'topology.cjs stack-file STACK_FILE LAB_DIR OUT [--engine E]');
