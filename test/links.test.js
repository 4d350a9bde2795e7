'use strict';
// Every relative link and #anchor in the documentation points somewhere: a
// file or folder of the repository, and a heading (by GitHub's anchor rules)
// or an explicit anchor of the page it names.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PKG } = require('./helpers');

const ROOT_PAGES = ['README.md', 'SECURITY.md', 'CONTRIBUTING.md', 'CHANGELOG.md'];

function pages() {
  const docs = fs.readdirSync(path.join(PKG, 'docs')).filter((f) => f.endsWith('.md')).sort();
  return [...ROOT_PAGES, ...docs.map((f) => `docs/${f}`)];
}

/** The text with fenced blocks blanked (line numbers kept) and inline code removed. */
function prose(text) {
  const lines = text.split('\n');
  let fence = null;
  return lines
    .map((line) => {
      const m = /^\s*(```+|~~~+)/.exec(line);
      if (fence) {
        if (m && m[1][0] === fence[0] && m[1].length >= fence.length) fence = null;
        return '';
      }
      if (m) {
        fence = m[1];
        return '';
      }
      return line.replace(/(`+)[^`]*?\1/g, (code) => code.replace(/[[\]()]/g, ' '));
    })
    .join('\n');
}

/** GitHub's anchor of a heading: markup dropped, lower case, punctuation but - and _ removed, spaces to -. */
function slug(heading) {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors a page defines: its headings (repeats get -1, -2, ...) and explicit id/name attributes. */
function anchors(text) {
  const found = new Set();
  const seen = new Map();
  const lines = prose(text.replace(/`/g, '\u0060')).split('\n');
  // Headings keep their inline code for the slug, so read them from the text itself.
  const raw = text.split('\n');
  lines.forEach((line, i) => {
    if (!/^#{1,6}\s/.test(line)) return;
    const base = slug(raw[i].replace(/^#{1,6}\s+/, '').replace(/\s+#+\s*$/, ''));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    found.add(n === 0 ? base : `${base}-${n}`);
  });
  for (const m of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(m[1]);
  return found;
}

/** Every link of a page: {target, line}; inline links, images and reference definitions. */
function links(text) {
  const out = [];
  prose(text)
    .split('\n')
    .forEach((line, i) => {
      for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1], line: i + 1 });
      const ref = /^\s*\[[^\]]+\]:\s*(\S+)/.exec(line);
      if (ref) out.push({ target: ref[1], line: i + 1 });
    });
  return out;
}

/** The dead links of one page (relative to the package): ["page line N: target (why)"]. */
function deadLinks(page, text, read = (p) => fs.readFileSync(path.join(PKG, p), 'utf8'), exists = (p) => fs.existsSync(path.join(PKG, p))) {
  const dead = [];
  for (const { target, line } of links(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not checked here
    const hash = target.indexOf('#');
    const file = decodeURIComponent(hash >= 0 ? target.slice(0, hash) : target);
    const anchor = hash >= 0 ? decodeURIComponent(target.slice(hash + 1)) : null;
    const where = `${page} line ${line}: ${target}`;
    const resolved = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), file));
    if (resolved.startsWith('..')) {
      dead.push(`${where} (outside the repository)`);
      continue;
    }
    if (!exists(resolved.replace(/\/$/, '') || '.')) {
      dead.push(`${where} (no such file)`);
      continue;
    }
    if (anchor === null || anchor === '') continue;
    if (!resolved.endsWith('.md')) {
      dead.push(`${where} (an anchor into a file that is not a page)`);
      continue;
    }
    const targetText = resolved === page ? text : read(resolved);
    if (!anchors(targetText).has(anchor)) dead.push(`${where} (no heading or anchor "${anchor}" in ${resolved})`);
  }
  return dead;
}

test('GitHub anchor slugs: case, punctuation, code, repeats', () => {
  assert.equal(slug('The `celery-pulse-native` command'), 'the-celery-pulse-native-command');
  assert.equal(slug('Choosing interval, maxStall and the probe threshold'), 'choosing-interval-maxstall-and-the-probe-threshold');
  assert.equal(slug('celery-node, fed by Python Celery'), 'celery-node-fed-by-python-celery');
  assert.equal(slug('Labels and expected stalls: `track()` and `expectStall()`'), 'labels-and-expected-stalls-track-and-expectstall');
  assert.equal(slug('A scheduler (the beat)'), 'a-scheduler-the-beat');
  assert.equal(slug('worker_threads'), 'worker_threads');
  assert.deepEqual([...anchors('# A\n\n## Usage\n\n```sh\n# not a heading\n```\n\n## Usage\n')], ['a', 'usage', 'usage-1']);
});

test('the link check catches a dead file, a dead anchor and an anchor in another page', () => {
  const files = { 'docs/a.md': '# A\n\n## Here\n', 'docs/b.md': '# B\n' };
  const read = (p) => files[p];
  const exists = (p) => p in files || p === 'docs';
  const page = [
    '# B',
    '[ok](a.md#here) [ok](#b) [ok](a.md) [web](https://example.com/x#y) `[code](gone.md)`',
    '[dead](gone.md) [dead anchor](a.md#nowhere) [own](#nowhere)',
    '```md',
    '[in a block](gone.md)',
    '```',
  ].join('\n');
  files['docs/b.md'] = page;
  assert.deepEqual(deadLinks('docs/b.md', page, read, exists), [
    'docs/b.md line 3: gone.md (no such file)',
    'docs/b.md line 3: a.md#nowhere (no heading or anchor "nowhere" in docs/a.md)',
    'docs/b.md line 3: #nowhere (no heading or anchor "nowhere" in docs/b.md)',
  ]);
});

test('no dead relative link or #anchor in the README, docs/, SECURITY.md, CONTRIBUTING.md and CHANGELOG.md', () => {
  const dead = [];
  let checked = 0;
  for (const page of pages()) {
    assert.ok(fs.existsSync(path.join(PKG, page)), `${page} is missing`);
    const text = fs.readFileSync(path.join(PKG, page), 'utf8');
    checked += links(text).length;
    dead.push(...deadLinks(page, text));
  }
  assert.ok(checked > 50, `only ${checked} links found: the link reader is broken`);
  assert.deepEqual(dead, []);
});
