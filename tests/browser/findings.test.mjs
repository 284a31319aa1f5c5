// Every finding code the engine can emit has a plain-words explanation on the page (www/words.js,
// FINDINGS). Without one the page still shows the engine's message, under the bare code.
//
// The codes are read from the Rust sources (crate/src, tests left out). A code is a
// `&'static str` that reaches `Finding::new`, directly or through a helper: any function with a
// `code: &'static str` parameter (Detection::finding, cert.rs's critical(), ovf.rs's
// Problems::warn, kernel.rs's problem(), ...). For every call of those, the first argument is
// read: string literals in it (also inside `if`/`match` arms) are codes; a bare identifier must
// be the enclosing helper's own parameter, or bound by a `let` in the same function whose
// literals are taken, or come from a `for` over tuples that a helper pushed. Anything else fails
// the test with its file and line, so a new way of building findings cannot be missed silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './lib.mjs';

function rustFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return rustFiles(p);
    return e.name.endsWith('.rs') ? [p] : [];
  });
}

/**
 * Rust source with comments blanked and string/char literals replaced by placeholders of the
 * same length (so offsets still match), and the literals themselves by offset.
 */
function lex(src) {
  const out = src.split('');
  const strings = new Map(); // offset of the opening quote -> value
  const blank = (from, to) => { for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' '; };
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      blank(i, end < 0 ? src.length : end);
      i = end < 0 ? src.length : end;
    } else if (c === '/' && src[i + 1] === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < src.length && depth) {
        if (src[j] === '/' && src[j + 1] === '*') { depth++; j += 2; } else if (src[j] === '*' && src[j + 1] === '/') { depth--; j += 2; } else j++;
      }
      blank(i, j);
      i = j;
    } else if ((c === 'r' || (c === 'b' && src[i + 1] === 'r')) && /^b?r#*"/.test(src.slice(i, i + 260)) && !/[A-Za-z0-9_]/.test(src[i - 1] || '')) {
      const m = /^b?r(#*)"/.exec(src.slice(i, i + 260));
      const close = `"${m[1]}`;
      const start = i + m[0].length;
      const end = src.indexOf(close, start);
      strings.set(i, src.slice(start, end));
      blank(i, end + close.length);
      out[i] = '"';
      i = end + close.length;
    } else if (c === '"') {
      let j = i + 1;
      let value = '';
      while (j < src.length && src[j] !== '"') {
        if (src[j] === '\\') { value += src[j] + src[j + 1]; j += 2; } else { value += src[j]; j++; }
      }
      strings.set(i, value);
      blank(i + 1, j);
      i = j + 1;
    } else if (c === '\'') {
      // A char literal ('x', '\n', '\u{..}') or a lifetime ('a, 'static).
      if (src[i + 1] === '\\') {
        const end = src.indexOf('\'', i + 3);
        blank(i, end + 1);
        i = end + 1;
      } else if (src[i + 2] === '\'') {
        blank(i, i + 3);
        i += 3;
      } else i++;
    } else i++;
  }
  return { code: out.join(''), strings };
}

/** The offset of the bracket that closes the one at `open` (in lexed code). */
function closing(code, open) {
  const pairs = { '(': ')', '[': ']', '{': '}' };
  const stack = [];
  for (let k = open; k < code.length; k++) {
    const ch = code[k];
    if (pairs[ch]) stack.push(pairs[ch]);
    else if (ch === ')' || ch === ']' || ch === '}') {
      if (stack.pop() !== ch) throw new Error(`unbalanced ${ch} at ${k}`);
      if (!stack.length) return k;
    }
  }
  return code.length;
}

/** Remove `#[cfg(test)]` items (test modules and test-only functions). */
function withoutTests(lexed) {
  let { code } = lexed;
  for (const m of [...code.matchAll(/#\[cfg\(test\)\]/g)].reverse()) {
    const brace = code.indexOf('{', m.index);
    const semi = code.indexOf(';', m.index);
    const end = semi >= 0 && (brace < 0 || semi < brace) ? semi : closing(code, brace); // `mod tests;` or an item
    code = code.slice(0, m.index) + code.slice(m.index, end + 1).replace(/[^\n]/g, ' ') + code.slice(end + 1);
  }
  return { code, strings: lexed.strings };
}

/** Every `fn` item: name, parameter list, body span. */
function functions(code) {
  const out = [];
  for (const m of code.matchAll(/\bfn\s+([A-Za-z_][A-Za-z0-9_]*)\s*(<[^(]*>)?\s*\(/g)) {
    const open = m.index + m[0].length - 1;
    const close = closing(code, open);
    const brace = code.indexOf('{', close);
    const semi = code.indexOf(';', close);
    if (brace < 0 || (semi >= 0 && semi < brace)) continue; // a declaration without a body
    out.push({ name: m[1], params: code.slice(open + 1, close), start: m.index, bodyStart: brace, end: closing(code, brace) });
  }
  return out;
}

const CODE_SHAPE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

function literalsIn(strings, from, to) {
  return [...strings].filter(([at]) => at >= from && at < to).map(([, v]) => v);
}

/** The first argument of the call whose `(` is at `open`: [from, to). */
function firstArgument(code, open) {
  const end = closing(code, open);
  let depth = 0;
  for (let k = open + 1; k < end; k++) {
    const ch = code[k];
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    else if (ch === ',' && depth === 0) return [open + 1, k];
  }
  return [open + 1, end];
}

function scan() {
  const sources = rustFiles(join(ROOT, 'crate', 'src')).map((file) => {
    const lexed = withoutTests(lex(readFileSync(file, 'utf8')));
    return { file: relative(ROOT, file), ...lexed, fns: functions(lexed.code) };
  });
  // Helpers: every function whose first parameter after `self` is `code: &'static str` (its
  // calls are resolved like any other: a helper that forwards `code` is fine, one that does
  // something else with it fails below). A private helper is matched in its own file only.
  const helpers = [];
  for (const s of sources) {
    for (const f of s.fns) {
      const params = f.params.split(',').map((p) => p.trim()).filter((p) => p && !/^&?\s*('\w+\s+)?(mut\s+)?self$/.test(p));
      if (!/^code\s*:\s*&\s*'static\s+str$/.test(params[0] || '') || f.name === 'new') continue;
      const pub = /\bpub(\([^)]*\))?\s+(async\s+)?(const\s+)?$/.test(s.code.slice(Math.max(0, f.start - 40), f.start));
      helpers.push({ name: f.name, file: s.file, pub });
      f.forwards = 'code';
    }
  }
  const codes = new Map(); // code -> first place it was seen
  const unresolved = [];
  for (const s of sources) {
    const lineOf = (at) => s.code.slice(0, at).split('\n').length;
    const names = [...new Set(helpers.filter((h) => h.pub || h.file === s.file).map((h) => h.name))];
    const call = new RegExp(`\\bFinding\\s*::\\s*new\\s*\\(|(?<![A-Za-z0-9_])(?:${names.join('|')})\\s*\\(`, 'g');
    for (const m of s.code.matchAll(call)) {
      if (/\bfn\s+$/.test(s.code.slice(Math.max(0, m.index - 4), m.index))) continue; // the definition
      const open = m.index + m[0].length - 1;
      const [from, to] = firstArgument(s.code, open);
      if (to >= closing(s.code, open)) continue; // one argument: Vec::push and the like, not a finding helper
      const where = `${s.file}:${lineOf(m.index)}`;
      const arg = s.code.slice(from, to).trim().replace(/^\*/, '');
      if (/^(crate\s*::\s*)?Finding\s*::\s*new\s*\(/.test(arg)) continue; // scanned as its own call
      const lits = literalsIn(s.strings, from, to);
      const add = (list) => { for (const v of list) if (CODE_SHAPE.test(v) && !codes.has(v)) codes.set(v, where); };
      if (lits.length) { add(lits); continue; }
      if (!/^[a-z_][a-z0-9_]*$/.test(arg)) { unresolved.push(`${where}: first argument \`${arg}\``); continue; }
      const fn = s.fns.filter((f) => f.bodyStart < m.index && m.index < f.end).sort((a, b) => b.start - a.start)[0];
      if (!fn) { unresolved.push(`${where}: \`${arg}\` outside a function`); continue; }
      // A helper forwarding its own code parameter.
      if (fn.forwards === arg) continue;
      const body = s.code.slice(fn.bodyStart, m.index);
      // `let code = ...;` / `let (code, ...) = ...;` earlier in the function: its literals.
      const lets = [...body.matchAll(new RegExp(`\\blet\\s+(?:\\(\\s*${arg}\\s*,[^)]*\\)|${arg})\\s*(?::[^=]+)?=`, 'g'))];
      if (lets.length) {
        const at = fn.bodyStart + lets[lets.length - 1].index;
        let end = at;
        let depth = 0;
        for (; end < m.index; end++) {
          const ch = s.code[end];
          if ('([{'.includes(ch)) depth++;
          else if (')]}'.includes(ch)) depth--;
          else if (ch === ';' && depth === 0) break;
        }
        const bound = literalsIn(s.strings, at, end).filter((v) => CODE_SHAPE.test(v));
        if (bound.length) { add(bound); continue; }
      }
      // `for (code, ...) in &x.field`: tuples a helper pushed into that field (its calls are scanned).
      const loop = new RegExp(`\\bfor\\s*\\(\\s*${arg}\\s*,[^)]*\\)\\s*in\\s*&?\\s*[a-z_.]*?\\.?([a-z_]+)\\s*\\{`).exec(body);
      if (loop) {
        const push = new RegExp(`\\.${loop[1]}\\s*\\.\\s*push\\s*\\(\\s*\\(\\s*code\\s*,`);
        if (s.fns.some((f) => f.forwards && push.test(s.code.slice(f.bodyStart, f.end)))) continue;
      }
      unresolved.push(`${where}: cannot tell which codes \`${arg}\` holds`);
    }
    // A Finding built without its constructor would bypass all of the above.
    for (const m of s.code.matchAll(/\bFinding\s*\{\s*code\b/g)) {
      if (!s.file.endsWith('report.rs')) unresolved.push(`${s.file}:${lineOf(m.index)}: a Finding struct literal`);
    }
  }
  // Module docs list their codes (`ovf-dangling-ref`: ...): those must be found too.
  const documented = new Map();
  for (const file of rustFiles(join(ROOT, 'crate', 'src'))) {
    const docs = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('//!')).join('\n');
    const section = /(?:Finding|Problem) codes[^\n]*\n([\s\S]*?)(?:\n\/\/!\s*\n|$)/.exec(docs);
    if (!section) continue;
    for (const m of section[1].matchAll(/`([a-z][a-z0-9]*(?:-[a-z0-9]+)+)`/g)) documented.set(m[1], relative(ROOT, file));
  }
  return { codes, unresolved, documented, helpers: new Set(['Finding::new', ...helpers.map((h) => h.name)]) };
}

test('every finding code is explained on the page', () => {
  const { codes, unresolved, documented, helpers } = scan();
  assert.deepEqual(unresolved, [], 'calls whose finding codes this test cannot read: extend the scanner in tests/browser/findings.test.mjs');
  // The scanner itself must keep seeing what is known to be there.
  for (const h of ['Finding::new', 'finding', 'critical', 'warn', 'problem']) assert.ok(helpers.has(h), `helper ${h} no longer found`);
  const known = ['backing-file', 'truncated', 'corrupt', 'digest-mismatch', 'manifest', 'bad-signature', 'certificate-expired',
    'certificate-not-yet-valid', 'signed', 'weak-digest', 'weak-key', 'bad-certificate-signature', 'unparsable-cert-file',
    'unparsable-certificate', 'unsupported-digest', 'unsupported-key', 'signed-file-mismatch', 'unsafe-member-name', 'ova-layout',
    'missing-member', 'capacity-mismatch', 'format-label', 'name-mismatch', 'not-a-disk', 'compressed-disk', 'ovf-dangling-ref',
    'ovf-size-overflow', 'ovf-bad-value', 'ovf-problems-truncated'];
  const notSeen = known.filter((c) => !codes.has(c));
  assert.deepEqual(notSeen, [], 'codes the engine is known to emit that the scan did not find');
  const undocumented = [...documented.keys()].filter((c) => !codes.has(c));
  assert.deepEqual(undocumented, [], 'codes a module documents that the scan did not find');
  assert.ok(codes.size >= 50, `found only ${codes.size} codes: the scan no longer matches the sources`);

  const app = readFileSync(join(ROOT, 'www', 'words.js'), 'utf8');
  const block = app.slice(app.indexOf('const FINDINGS = {'), app.indexOf('};', app.indexOf('const FINDINGS = {')));
  const explained = new Set([...block.matchAll(/^\s+'([a-z0-9-]+)':|^\s+([a-z]+):/gm)].map((m) => m[1] || m[2]));
  const missing = [...codes.keys()].filter((c) => !explained.has(c)).sort();
  assert.deepEqual(missing, [], 'add a title and a plain explanation for these codes to FINDINGS in www/words.js');
});
