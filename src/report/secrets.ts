/**
 * Secrets (database passwords) in every form leapfrog itself gives them,
 * so that masking and the argv guard look for all of them, not only the
 * raw text: a password with `@ : / % + = ' "` or a space is written
 * percent-encoded into the URLs of config templates, escaped inside the
 * quotes of a client option file, escaped again in JSON output, HTML and
 * shell-quoted argv. A secret is known from the moment its URL, option file
 * or environment variable is parsed (`registerSecret`); everything leapfrog
 * writes to stdout, stderr, the ledger and reports passes `maskKnown`.
 */

const MASK = '****';

const hex = (c: string) => [...Buffer.from(c, 'utf8')].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join('');

/** Percent-encode every character `keep` does not accept (UTF-8, upper-case hex). */
function percent(s: string, keep: RegExp): string {
  return [...s].map((c) => (keep.test(c) ? c : hex(c))).join('');
}

/**
 * Every form of `secret` leapfrog may produce, the raw one first:
 * - encodeURIComponent (DatabaseAddress.url, what config templates get);
 * - RFC 3986 strict (only unreserved characters kept: what Python's
 *   urllib.parse.quote(s, safe='') gives, as a toolchain may echo it);
 * - the WHATWG URL serializer's userinfo percent-encode set
 *   (https://url.spec.whatwg.org/#userinfo-percent-encode-set), what
 *   `new URL()` keeps for a password, e.g. `%` and `+` unencoded;
 * - application/x-www-form-urlencoded (space as `+`), URLSearchParams and
 *   Python's quote_plus;
 * - encodeURIComponent's with space as `+` (LiquidJS's url_encode filter,
 *   in config templates), and encodeURI's;
 * - each percent form with lower-case hex as well;
 * - the escapes inside a double-quoted option-file value (`\\`, `\"`,
 *   src/database/mysql-dump.ts) and a bare one (`\s` for a space…);
 * - a JSON string's escapes, HTML's entities, shell single-quoting.
 */
export function secretForms(secret: string): string[] {
  if (secret === '') return [];
  const encoded = encodeURIComponent(secret);
  const strict = percent(secret, /^[A-Za-z0-9_.~-]$/);
  const userinfo = (() => {
    const u = new URL('http://h/');
    u.password = secret;
    return u.password;
  })();
  const form = new URLSearchParams([['x', secret]]).toString().slice(2);
  // LiquidJS's url_encode (encodeURIComponent, space as +; its test/integration/filters/url.spec.ts) and encodeURI.
  const percentForms = [encoded, strict, userinfo, form, encoded.replace(/%20/g, '+'), encodeURI(secret)];
  const lower = percentForms.map((f) => f.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  const optionQuoted = secret.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  const optionBare = secret.replace(/\\/g, '\\\\').replace(/ /g, '\\s').replace(/\t/g, '\\t');
  const json = JSON.stringify(secret).slice(1, -1);
  const html = secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  const shell = secret.replace(/'/g, `'\\''`);
  return [...new Set([secret, ...percentForms, ...lower, optionQuoted, optionBare, json, html, shell])];
}

/** Every form of every secret, longest first (so a longer form is masked whole, not through a shorter one inside it). */
export function allForms(secrets: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const s of secrets) for (const f of secretForms(s)) out.add(f);
  return [...out].sort((a, b) => b.length - a.length);
}

/** Whether `text` holds any form of `secret`: the argv guard. */
export function containsSecret(text: string, secret: string): boolean {
  return secretForms(secret).some((f) => text.includes(f));
}

/** `text` with every form of every secret replaced by ****. */
export function maskSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const f of allForms(secrets)) if (out.includes(f)) out = out.split(f).join(MASK);
  return out;
}

/**
 * Masks secrets in a stream of text that arrives in arbitrary chunks: a
 * secret the child prints in two writes (or that a pipe splits) must not
 * slip through, so the last `longest - 1` characters are held back until
 * the next chunk (or the end) shows whether they start a secret.
 */
export function streamMasker(secrets: Iterable<string>): { push(text: string): string; end(): string } {
  const list = allForms(secrets);
  const hold = list.length === 0 ? 0 : list[0]!.length - 1;
  let pending = '';
  const drain = (final: boolean): string => {
    const text = pending;
    const limit = final ? text.length : text.length - hold;
    let out = '';
    let i = 0;
    while (i < limit) {
      // The earliest occurrence of any form, the longest one on a tie.
      let at = -1;
      let len = 0;
      for (const s of list) {
        const j = text.indexOf(s, i);
        if (j !== -1 && (at === -1 || j < at)) {
          at = j;
          len = s.length;
        }
      }
      if (at === -1 || at >= limit) {
        out += text.slice(i, limit);
        i = limit;
        break;
      }
      // at < limit, so the whole form is already in `text`.
      out += text.slice(i, at) + MASK;
      i = at + len;
    }
    pending = text.slice(i);
    return out;
  };
  return {
    push(text) {
      pending += text;
      return drain(false);
    },
    end() {
      return drain(true);
    },
  };
}

/** The secrets this process has learnt (passwords parsed from --db, --server, --from, option files, the environment; temporary accounts'). */
const known = new Set<string>();
let knownForms: string[] = [];

export function registerSecret(secret: string | undefined): void {
  if (secret === undefined || secret === '' || known.has(secret)) return;
  known.add(secret);
  knownForms = allForms(known);
}

export function knownSecrets(): readonly string[] {
  return [...known];
}

/** `text` with every form of every secret this process knows masked: for stdout, stderr, the ledger and reports. */
export function maskKnown(text: string): string {
  let out = text;
  for (const f of knownForms) if (out.includes(f)) out = out.split(f).join(MASK);
  return out;
}
