// Bundle each widget into one self-contained ES module (no CDN, no runtime imports) inside the
// Python package, where anywidget loads it as the widget's _esm. The stylesheets a widget imports
// (its own, which imports the shared lib/widget.css) are bundled beside it as <name>.css, its _css.
import { build } from 'esbuild';
import { mkdirSync, statSync } from 'node:fs';

const out = '../interp_magics/widgets/static';
const all = ['attention', 'patching', 'probes', 'lens', 'circuit', 'features'];
// `node build.mjs patching` builds one widget; no argument builds every one.
const asked = process.argv.slice(2);
const unknown = asked.filter(name => !all.includes(name));
if (unknown.length)
  throw new Error(`unknown widget ${unknown.join(', ')}; choose from ${all.join(', ')}`);
const widgets = asked.length ? asked : all;
const kib = path => `${(statSync(path).size / 1024).toFixed(1)} KiB`;
mkdirSync(out, { recursive: true });
for (const name of widgets) {
  await build({
    entryPoints: [`src/${name}.ts`],
    bundle: true,
    format: 'esm',
    minify: true,
    target: 'es2020',
    legalComments: 'none',
    outfile: `${out}/${name}.js`
  });
  console.log(
    `built ${out}/${name}.js (${kib(`${out}/${name}.js`)}, css ${kib(`${out}/${name}.css`)})`
  );
}
