'use strict';
// Reads a memcheck --xml file and fails if any error or definite leak has a
// stack frame in the addon. Usage: node valgrind-report.js MEMCHECK.xml ADDON.node
const fs = require('node:fs');

const [xmlFile, addon] = process.argv.slice(2);
const xml = fs.readFileSync(xmlFile, 'utf8');
if (!xml.includes('</valgrindoutput>')) {
  console.error(`${xmlFile}: incomplete memcheck output (valgrind died?)`);
  process.exit(1);
}

const decode = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
const tag = (text, name) => {
  const m = text.match(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`));
  return m ? decode(m[1].trim()) : '';
};

const errors = [...xml.matchAll(/<error>([\s\S]*?)<\/error>/g)].map(([, body]) => {
  const frames = [...body.matchAll(/<frame>([\s\S]*?)<\/frame>/g)].map(([, f]) => ({
    obj: tag(f, 'obj'),
    fn: tag(f, 'fn'),
    where: tag(f, 'dir') && tag(f, 'file') ? `${tag(f, 'dir')}/${tag(f, 'file')}:${tag(f, 'line')}` : tag(f, 'obj'),
  }));
  const what = tag(body, 'what') || tag(tag(body, 'xwhat'), 'text');
  return { kind: tag(body, 'kind'), what, frames };
});

const ours = (e) => e.frames.some((f) => f.obj === addon || /(^|\W)pulse::|PulseHandle/.test(f.fn) || /\/native\/\w+\.(cc|h):/.test(f.where));
const isLeak = (e) => e.kind.startsWith('Leak_');
const definite = errors.filter((e) => e.kind === 'Leak_DefinitelyLost');
const memErrors = errors.filter((e) => !isLeak(e));

const show = (e) => `${e.kind}: ${e.what}\n${e.frames.slice(0, 16).map((f) => `    ${f.fn || '?'} (${f.where})`).join('\n')}`;
const byKind = (list) => Object.entries(list.reduce((acc, e) => ({ ...acc, [e.kind]: (acc[e.kind] || 0) + 1 }), {}))
  .map(([k, n]) => `${k} x${n}`).join(', ') || 'none';

const ourErrors = memErrors.filter(ours);
const ourLeaks = definite.filter(ours);
console.log(`valgrind: ${memErrors.length} memcheck error(s) in all (${byKind(memErrors)}), ${ourErrors.length} through the addon`);
console.log(`valgrind: ${definite.length} definite leak(s) in all, ${ourLeaks.length} allocated by the addon`);
for (const e of [...memErrors, ...definite].filter((x) => !ours(x))) console.log(`(in Node, not the addon) ${show(e)}`);
if (ourErrors.length || ourLeaks.length) {
  for (const e of [...ourErrors, ...ourLeaks]) console.error(show(e));
  process.exit(1);
}
