// Firefox for the e2e suite: Debian's firefox-esr driven by Puppeteer over WebDriver BiDi (no
// geckodriver). e2e/engines.py talks to it in JSON lines: one command a line on stdin, one
// answer a line on stdout ({"value": ...} or {"error": "..."}).
//
//   node e2e/firefox_driver.mjs '{"executable": "/usr/bin/firefox-esr", "prefs": {...}}'
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';

const options = JSON.parse(process.argv[2] || '{}');
const say = (answer) => process.stdout.write(JSON.stringify(answer) + '\n');

let browser;
try {
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: options.executable || '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: options.prefs || {},
  });
} catch (err) {
  say({ error: `Firefox did not start: ${err.message}` });
  process.exit(1);
}
say({ value: await browser.version() });

/** @type {Map<number, import('puppeteer-core').Page>} */
const tabs = new Map();
let next = 0;

const commands = {
  async open(_, url) {
    const page = await browser.newPage();
    tabs.set(++next, page);
    await page.goto(url);
    return next;
  },
  goto: (page, url) => page.goto(url).then(() => null),
  click: (page, selector) => page.click(selector).then(() => null),
  evaluate: (page, expression) => page.evaluate(expression),
  back: (page) => page.goBack().then(() => null),
  async close(page, _, tab) {
    await page.close({ runBeforeUnload: true });
    tabs.delete(tab);
    return null;
  },
};

for await (const line of readline.createInterface({ input: process.stdin })) {
  const { command, tab, arg } = JSON.parse(line);
  if (command == 'quit') break;
  try {
    say({ value: (await commands[command](tabs.get(tab), arg, tab)) ?? null });
  } catch (err) {
    say({ error: String(err?.message || err) });
  }
}
await browser.close();
say({ value: null });
