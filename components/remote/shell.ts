/**
 * Shell rendering shared by every remote step. Pure: no Pulumi import.
 *
 * A step's command text is `wrapScript(...)`: it re-executes bash (as root, through `sudo -n`
 * for other users) on a quoted heredoc, so the script reaches the host verbatim, stdin stays
 * free for secret payloads, and `pulumi preview --diff` shows the script as written.
 */

/** Quote one word for bash: `it's` → `'it'\''s'`. Safe for any string without NUL. */
export function shq(s: string | number): string {
  const v = String(s);
  if (v.includes("\0")) throw new Error("shq: NUL byte cannot be quoted");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(v)) return v;
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/** Quote several words. */
export function shqAll(words: (string | number)[]): string {
  return words.map(shq).join(" ");
}

/** A heredoc delimiter that does not occur as a line of `text`. */
export function heredocDelimiter(text: string, base: string): string {
  // a line equal to d: the whole text, its first or last line, or one in between (no split of a long script)
  const isLine = (d: string) => text === d || text.startsWith(`${d}\n`) || text.endsWith(`\n${d}`) || text.includes(`\n${d}\n`);
  let d = base;
  for (let i = 1; isLine(d); i++) d = `${base}_${i}`;
  return d;
}

/**
 * Helper functions a script may call; a script carries only the ones it uses, so changing one
 * helper does not re-run every command on the next `pulumi up`.
 */
const HELPERS: Record<string, string> = {
  hakube_retry: `# hakube_retry SECONDS WHAT CMD...: re-run CMD every second until it succeeds or SECONDS pass
hakube_retry() {
  local limit=$1 what=$2 end=$((SECONDS + $1)); shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || hakube_fail "$what: still failing after \${limit}s"
    sleep 1
  done
}`,
  hakube_put: `# hakube_put PATH MODE OWNER GROUP < content: atomic (temp file + rename), only when different
hakube_put() {
  local path=$1 mode=$2 owner=$3 group=$4 dir tmp
  dir=$(dirname "$path")
  [ -d "$dir" ] || install -d -m 0755 "$dir"
  tmp=$(mktemp "$dir/.hakube.XXXXXX")
  cat > "$tmp"
  chmod "$mode" "$tmp"
  chown "$owner:$group" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path" \\
     && [ "$(stat -c '%a %U %G' "$path")" = "$(stat -c '%a %U %G' "$tmp")" ]; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
    HAKUBE_CHANGED+=("$path")
    echo "changed $path"
  fi
}`,
  hakube_put_stdin: `# hakube_put_stdin INDEX PATH MODE OWNER GROUP: install secret payload INDEX (base64 line of stdin)
hakube_put_stdin() {
  local i=$1; shift
  [ "$i" -lt "\${#HAKUBE_STDIN[@]}" ] || hakube_fail "secret payload $i missing on stdin"
  printf '%s' "\${HAKUBE_STDIN[$i]}" | base64 -d | hakube_put "$@"
}`,
  hakube_dir: `# hakube_dir PATH MODE OWNER GROUP: create or fix a directory
hakube_dir() {
  local path=$1 mode=$2 owner=$3 group=$4
  if [ ! -d "$path" ]; then
    install -d -m "$mode" -o "$owner" -g "$group" "$path"; HAKUBE_CHANGED+=("$path"); echo "changed $path"
  elif [ "$(stat -c '%a %U %G' "$path")" != "$(printf '%o' "$((8#$mode))") $owner $group" ]; then
    chmod "$mode" "$path"; chown "$owner:$group" "$path"; HAKUBE_CHANGED+=("$path"); echo "changed $path"
  fi
}`,
  hakube_remove: `# hakube_remove PATH...: delete files that exist
hakube_remove() {
  local p
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then rm -f "$p"; HAKUBE_CHANGED+=("$p"); echo "removed $p"; fi
  done
}`,
  hakube_apt_install: `# hakube_apt_install PKG...: install missing Debian/Ubuntu packages (no-op when present)
hakube_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  [ "\${#missing[@]}" -eq 0 ] && return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null </dev/null || hakube_fail "apt-get update failed"
  apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold install --no-install-recommends "\${missing[@]}" >/dev/null </dev/null \\
    || hakube_fail "apt-get install \${missing[*]} failed"
  echo "installed \${missing[*]}"
}`,
  hakube_changed: `# hakube_changed: true when this run changed any managed file
hakube_changed() { [ "\${#HAKUBE_CHANGED[@]}" -gt 0 ]; }`,
  hakube_changed_any: `# hakube_changed_any PATH...: true when this run changed one of these files
hakube_changed_any() {
  local c p
  for c in "\${HAKUBE_CHANGED[@]}"; do for p in "$@"; do [ "$c" = "$p" ] && return 0; done; done
  return 1
}`,
};

const HELPER_NAMES = Object.keys(HELPERS);
const HELPER_RES = new Map(HELPER_NAMES.map((n) => [n, new RegExp(`\\b${n}\\b`)]));
/** Helpers by body: the same body (node preparation on hundreds of hosts) is scanned once. */
const helperCache = new Map<string, string[]>();

/** Which helpers a body uses (helpers may use each other). */
function helpersFor(body: string): string[] {
  let cached = helperCache.get(body);
  if (!cached) {
    cached = scanHelpers(body);
    if (helperCache.size > 500) helperCache.clear();
    helperCache.set(body, cached);
  }
  return cached;
}

function scanHelpers(body: string): string[] {
  if (!body.includes("hakube_")) return [];
  const used = new Set<string>();
  const visit = (text: string) => {
    for (const name of HELPER_NAMES) {
      if (!used.has(name) && HELPER_RES.get(name)!.test(text)) {
        used.add(name);
        visit(HELPERS[name]);
      }
    }
  };
  visit(body);
  return HELPER_NAMES.filter((n) => used.has(n));
}

export interface ScriptOptions {
  /** Host name (for messages). */
  host: string;
  /** Step name (for messages). */
  step: string;
  /** The script body (bash). */
  body: string;
  /** Number of secret payloads on stdin (read into HAKUBE_STDIN before the body runs). */
  stdinItems?: number;
}

/** The ERR trap every script starts with: any failing command fails the step, naming the line. */
export const ERR_TRAP = `trap 'hakube_fail "line $LINENO: \\\`$BASH_COMMAND\\\` failed (exit $?)"' ERR`;

/**
 * Several bodies as the body of one step, run in order, each in its own subshell: a part's
 * variables, traps (its temp directory's clean-up), and list of changed files
 * (`hakube_changed`) stay its own, as if it were a step of its own. A part's failure message
 * names it (`hakube: <host>: <step> (<part>): <reason>`) and ends the step; a part must not
 * `exit 0` to end the step early (that ends only the part).
 */
export function renderParts(parts: { label: string; body: string }[]): string {
  const out = [`# ${parts.length} parts, in order, each in its own subshell: ${parts.map((p) => p.label).join(", ")}`, `trap 'exit $?' ERR`];
  for (const p of parts) {
    out.push(`# ---- part: ${p.label}`, "(", ERR_TRAP, `HAKUBE_STEP="$HAKUBE_STEP (${p.label})"`, p.body.replace(/\s+$/, ""), ")");
  }
  out.push(ERR_TRAP);
  return out.join("\n") + "\n";
}

/** The full bash script: strict mode, failure messages, the helpers the body uses, the body. */
export function renderScript(o: ScriptOptions): string {
  const parts = [
    "set -Eeuo pipefail",
    "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `HAKUBE_HOST=${shq(o.host)} HAKUBE_STEP=${shq(o.step)} HAKUBE_CHANGED=()`,
    `hakube_fail() { printf 'hakube: %s: %s: %s\\n' "$HAKUBE_HOST" "$HAKUBE_STEP" "$*" >&2; exit 1; }`,
    ERR_TRAP,
  ];
  if (o.stdinItems) {
    parts.push(
      `mapfile -t HAKUBE_STDIN`,
      `[ "\${#HAKUBE_STDIN[@]}" -eq ${o.stdinItems} ] || hakube_fail "expected ${o.stdinItems} secret payload(s) on stdin, got \${#HAKUBE_STDIN[@]}"`,
    );
  }
  for (const h of helpersFor(o.body)) parts.push(HELPERS[h]);
  parts.push(o.body.replace(/\s+$/, ""));
  return parts.join("\n") + "\n";
}

export interface CommandOptions extends ScriptOptions {
  /** SSH user; anything but root runs the script through `sudo -n`. */
  user: string;
}

/** Bash's single-argument limit is 128 KiB; stay well below. */
export const MAX_SCRIPT_BYTES = 100 * 1024;

/** The command text the provider runs over SSH (its login shell may be sh or bash). */
export function wrapScript(o: CommandOptions): string {
  const script = renderScript(o);
  if (Buffer.byteLength(script) > MAX_SCRIPT_BYTES)
    throw new Error(`hakube: ${o.host}: ${o.step}: script is ${Buffer.byteLength(script)} bytes (limit ${MAX_SCRIPT_BYTES})`);
  const eof = heredocDelimiter(script, "HAKUBE_SCRIPT");
  const runner = o.user === "root" ? "bash --norc --noprofile" : "sudo -n -- bash --norc --noprofile";
  return `# hakube: ${o.step} on ${o.host}\nexec ${runner} -c "$(cat <<'${eof}'\n${script}${eof}\n)" ${shq(`hakube-${o.step}`)}\n`;
}

/** Bash lines that install an inline (non-secret) file; preview shows the content. */
export function putFile(f: { path: string; mode: string; owner?: string; group?: string; content: string }): string {
  const content = f.content.endsWith("\n") ? f.content : f.content + "\n";
  const eof = heredocDelimiter(content, "HAKUBE_FILE");
  return `hakube_put ${shqAll([f.path, f.mode, f.owner ?? "root", f.group ?? f.owner ?? "root"])} <<'${eof}'\n${content}${eof}`;
}

/** Bash line that installs secret payload `index` from stdin (keys: mode 0600). */
export function putFileFromStdin(f: { path: string; mode?: string; owner?: string; group?: string; index: number }): string {
  return `hakube_put_stdin ${f.index} ${shqAll([f.path, f.mode ?? "0600", f.owner ?? "root", f.group ?? f.owner ?? "root"])}`;
}

/** Encode secret payloads for stdin: one base64 line each. */
export function encodeStdin(items: string[]): string {
  return items.map((s) => Buffer.from(s, "utf8").toString("base64")).join("\n") + "\n";
}
