// Bundle each widget into one self-contained ES module (no CDN, no runtime imports) inside the
// Python package, where anywidget loads it as the widget's _esm.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, statSync } from "node:fs";

const out = "../interp_magics/widgets/static";
const widgets = ["attention", "patching", "probes"];
mkdirSync(out, { recursive: true });
for (const name of widgets) {
  await build({
    entryPoints: [`src/${name}.ts`],
    bundle: true,
    format: "esm",
    minify: true,
    target: "es2020",
    legalComments: "none",
    outfile: `${out}/${name}.js`,
  });
  copyFileSync(`src/${name}.css`, `${out}/${name}.css`);
  const kb = (statSync(`${out}/${name}.js`).size / 1024).toFixed(1);
  console.log(`built ${out}/${name}.js (${kb} KiB)`);
}
