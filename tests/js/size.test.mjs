import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

test('the module, minified and gzip -9, fits the 2,400-byte budget', () => {
  const out = execFileSync(process.execPath, [new URL('../../bench/size.mjs', import.meta.url).pathname]).toString();
  const size = +out.match(/minified\+gzip -9 (\d+) B/)[1];
  assert.ok(size > 1000 && size <= 2400, out);
});

test('the module has no eval, no Function constructor, no unload handlers', async () => {
  const { readFileSync } = await import('node:fs');
  const src = readFileSync(new URL('../../static/js/telemetry.js', import.meta.url), 'utf8');
  assert.doesNotMatch(src, /\beval\(|new Function|['"](before)?unload['"]/);
});
