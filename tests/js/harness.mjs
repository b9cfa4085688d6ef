// A fresh browser for each test: happy-dom's window, a fake fetch that answers on demand,
// a fake sendBeacon and IntersectionObserver (happy-dom has neither), and a fresh module.
import { Window } from 'happy-dom';

let generation = 0;
const realCrypto = globalThis.crypto;

/**
 * @param {{config?: object|null, storage?: Record<string,string>, session?: Record<string,string>,
 *   navigator?: object, html?: string, fetchThrows?: boolean, brokenStorage?: boolean,
 *   spyStorage?: Array<[string, string]>, insecure?: boolean}} [opts]
 * `spyStorage` collects [method, key] for every localStorage call the module makes.
 * `insecure`: a page that is not a secure context (plain HTTP by a name), whose crypto has
 * getRandomValues but no randomUUID.
 */
export async function load(opts = {}) {
  const win = new Window({ url: 'http://app.test/experiments/1' });
  const doc = win.document;
  if (opts.config !== null) {
    const config = { disabled: false, reason: null, endpoint: '../ajax-api/3.0/mlflow/ui-telemetry',
      rolloutPercentage: 100, disabledEvents: [], flushIntervalMs: 5000, ...opts.config };
    doc.head.innerHTML = `<script type="application/json" id="ui-telemetry-config">${JSON.stringify(config)}</script>`;
  }
  doc.body.innerHTML = opts.html ?? '';
  for (const [k, v] of Object.entries(opts.storage ?? {})) win.localStorage.setItem(k, v);
  for (const [k, v] of Object.entries(opts.session ?? {})) win.sessionStorage.setItem(k, v);

  // Both resolve a relative URL against the page's address, as a browser's do.
  const resolve = (url) => new URL(url, doc.baseURI).href;
  const requests = [];
  const beacons = [];
  const answers = [];
  const fetch = (url, init) => {
    if (opts.fetchThrows) throw new TypeError('keepalive not supported');
    const req = { url: resolve(url), init, body: JSON.parse(init.body) };
    requests.push(req);
    return new Promise((resolve, reject) => answers.push({ req, resolve, reject }));
  };
  const observers = [];
  class FakeIntersectionObserver {
    constructor(cb) { this.cb = cb; this.targets = new Set(); observers.push(this); }
    observe(el) { this.targets.add(el); }
    unobserve(el) { this.targets.delete(el); }
    disconnect() { this.targets.clear(); }
    /** Report `el` as visible with the given ratio. */
    show(el, ratio) {
      if (this.targets.has(el)) this.cb([{ target: el, isIntersecting: ratio > 0, intersectionRatio: ratio }]);
    }
  }
  const nav = { onLine: true, doNotTrack: null, globalPrivacyControl: undefined,
    sendBeacon: (url, body) => { beacons.push({ url: resolve(url), body: JSON.parse(body) }); return opts.beaconOk ?? true; },
    ...opts.navigator };
  const spied = (real) => new Proxy(real, {
    get(target, name) {
      const value = Reflect.get(target, name);
      if (typeof value != 'function') return value;
      return (...args) => { opts.spyStorage.push([String(name), args[0]]); return value.apply(target, args); };
    },
  });
  const storage = (real) => opts.brokenStorage
    ? new Proxy({}, { get() { throw new win.DOMException('denied', 'SecurityError'); } })
    : opts.spyStorage && real === win.localStorage ? spied(real) : real;
  Object.assign(globalThis, {
    window: win, document: doc, Element: win.Element, Node: win.Node,
    MutationObserver: win.MutationObserver, IntersectionObserver: FakeIntersectionObserver,
    fetch, localStorage: storage(win.localStorage), sessionStorage: storage(win.sessionStorage),
  });
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  const insecure = { getRandomValues: (array) => realCrypto.getRandomValues(array) };
  Object.defineProperty(globalThis, 'crypto', { value: opts.insecure ? insecure : realCrypto,
    configurable: true, writable: true });
  const mod = await import(`../../static/js/telemetry.js?v=${++generation}`);
  return {
    mod, win, doc, requests, beacons, nav, observers,
    /** Answer the oldest open request; a string body is not JSON (a proxy's page, a 204). */
    async answer(status = 200, body = { status: 'success' }, headers = {}) {
      const a = answers.shift();
      if (!a) throw new Error('no request to answer');
      const json = async () => {
        if (typeof body == 'string') throw new SyntaxError('Unexpected token < in JSON');
        return body;
      };
      a.resolve({ ok: status >= 200 && status < 300, status,
        headers: { get: (k) => headers[k] ?? null }, json });
      await settle();
    },
    async fail() {
      answers.shift().reject(new TypeError('Failed to fetch'));
      await settle();
    },
    open: () => answers.length,
    records: () => requests.flatMap((r) => r.body.records),
    click: (sel) => doc.querySelector(sel).dispatchEvent(new win.MouseEvent('click', { bubbles: true })),
    hide() {
      Object.defineProperty(doc, 'visibilityState', { value: 'hidden', configurable: true });
      doc.dispatchEvent(new win.Event('visibilitychange'));
    },
    close() { mod.shutdown(); win.happyDOM.abort(); },
  };
}

export async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** Every record saved for a later page, whichever save wrote it. @param {Storage} store */
export function saved(store) {
  return Object.keys(store).filter((k) => k.startsWith(KEYS.saved)).flatMap((k) => JSON.parse(store.getItem(k)));
}

/** A storage's content, to carry into the next load. @param {Storage} store */
export function contents(store) {
  return Object.fromEntries(Object.keys(store).map((k) => [k, store.getItem(k)]));
}

export const KEYS = {
  enabled: 'mlflow.settings.telemetry.enabled_v1',
  installation: 'mlflow-telemetry-installation-id',
  session: 'mlflow-telemetry-session-id',
  dev: 'mlflow.settings.telemetry.enable-dev-logging_v1',
  saved: 'ui-telemetry.unsent_v1',
  recent: 'ui-telemetry.recent_v1',
  roll: 'ui-telemetry.rollout_v1',
};

export const BUTTON = '<button id="b" data-component-id="mlflow.test.button" data-component-type="button"><span id="inner">Go</span></button>';
