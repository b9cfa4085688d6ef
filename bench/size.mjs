// Prints the size of the browser module: raw, minified (esbuild --minify) and gzip -9.
// Budget: 2,400 bytes minified + gzip -9. Run: node bench/size.mjs
import { buildSync } from 'esbuild';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const file = new URL('../static/js/telemetry.js', import.meta.url).pathname;
const raw = readFileSync(file);
const min = buildSync({ entryPoints: [file], bundle: true, minify: true, format: 'esm', write: false })
  .outputFiles[0].contents;
// The gzip binary, as `esbuild ... | gzip -9 | wc -c` measures it (zlib's header differs).
const gz = execFileSync('gzip', ['-9', '-c'], { input: min });
const budget = 2400;
console.log(`static/js/telemetry.js  raw ${raw.length} B  minified ${min.length} B  minified+gzip -9 ${gz.length} B  (budget ${budget} B, ${budget - gz.length} B to spare)`);
console.log(`MLflow's UI client and worker together: about 2,460 B minified+gzip`);
process.exitCode = gz.length <= budget ? 0 : 1;
