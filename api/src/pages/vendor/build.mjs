// Builds the GraphiQL files Photon serves: one production bundle of GraphiQL, its fetcher
// and React (graphiql 3.x publishes its UMD `graphiql.min.js` as an unminified development
// build, and 4.x publishes none), GraphiQL's stylesheet, and the licence of every package
// that ends up in them. Run through build.sh, which installs the pinned packages first.
//
//   node build.mjs <node_modules parent> <output directory>

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';

const [workDir, outDir] = process.argv.slice(2).map((p) => resolve(p));
if (!workDir || !outDir) {
  console.error('usage: node build.mjs <work dir> <output dir>');
  process.exit(2);
}
const here = new URL('.', import.meta.url).pathname;
const pkg = (name) => JSON.parse(readFileSync(join(workDir, 'node_modules', name, 'package.json'), 'utf8'));
const graphiql = pkg('graphiql').version;
const react = pkg('react').version;

const common = {
  absWorkingDir: workDir,
  bundle: true,
  minify: true,
  metafile: true,
  // Licences go to their own file, listed per package, instead of comments in the bundle.
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
  nodePaths: [join(workDir, 'node_modules')],
};

const js = await esbuild.build({
  ...common,
  entryPoints: [join(here, 'entry.js')],
  outfile: join(outDir, `graphiql-${graphiql}.min.js`),
  format: 'iife',
  globalName: 'PhotonGraphiQL',
  target: ['es2020'],
  // React's and the other libraries' production paths, without development warnings.
  define: { 'process.env.NODE_ENV': '"production"' },
  banner: {
    js: `/* GraphiQL ${graphiql} with React ${react}, built by api/src/pages/vendor/build.sh. Licences: third-party-licenses.txt */`,
  },
});

const css = await esbuild.build({
  ...common,
  entryPoints: [join(here, 'entry.css')],
  outfile: join(outDir, `graphiql-${graphiql}.min.css`),
  banner: { css: `/* GraphiQL ${graphiql}, built by api/src/pages/vendor/build.sh. Licences: third-party-licenses.txt */` },
});

// Every package a byte of either file came from, with its licence text.
const copyright = JSON.parse(readFileSync(join(here, 'copyright.json'), 'utf8'));
const mit = (holder) => `MIT License

${holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;
const packages = new Map();
for (const input of [...Object.keys(js.metafile.inputs), ...Object.keys(css.metafile.inputs)]) {
  const match = input.match(/^(?:.*\/)?node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) packages.set(match[1], join(workDir, 'node_modules', match[1]));
}
const sections = [...packages.entries()]
  .sort(([a], [b]) => a.localeCompare(b))
  .map(([name, dir]) => {
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(-mit)?(\.(md|txt))?$/i.test(f));
    let text;
    if (file) {
      text = readFileSync(join(dir, file), 'utf8').trim();
    } else if (meta.license === 'MIT' && copyright[name]) {
      // The package declares MIT but its tarball carries no licence file.
      text = mit(copyright[name]);
    } else {
      throw new Error(`${name} ships no licence file: add its copyright line to copyright.json`);
    }
    return `${name} ${meta.version} (${meta.license})\n${'-'.repeat(72)}\n${text}\n`;
  });
writeFileSync(
  join(outDir, 'third-party-licenses.txt'),
  `Third-party software in Photon's GraphiQL files (graphiql-${graphiql}.min.js and\n` +
    `graphiql-${graphiql}.min.css), one section per package, as published on npm.\n\n` +
    sections.join('\n'),
);
console.log(`built GraphiQL ${graphiql} with React ${react}: ${packages.size} packages`);
