// ui-telemetry browser module: anonymous ui_event records from elements with
// data-component-id, batched to the relay. No dependencies, no eval, no inline script.
// Every byte ships to every user: comments say why (esbuild strips them), names say what.

/**
 * @typedef {{componentId: string, componentType: string, eventType: string,
 *   componentViewId?: string, componentSubType?: string, value?: string}} UiEvent
 * @typedef {{installation_id: string, session_id: string, event_name: 'ui_event',
 *   timestamp_ns: number, params: UiEvent, event_id: string}} TelemetryRecord
 * @typedef {{disabled: boolean, reason: string|null, endpoint: string,
 *   rolloutPercentage: number, disabledEvents: string[], flushIntervalMs: number}} PageConfig
 * @typedef {'server'|'settings'|'storage'|'gpc'|'dnt'|'relay'|'rollout'} OffReason
 */

// ---- Config and consent -------------------------------------------------------------------

// MLflow's storage keys, so a user's choice carries over between the two.
const ENABLED = 'mlflow.settings.telemetry.enabled_v1';
const INSTALLATION = 'mlflow-telemetry-installation-id';
const SESSION = 'mlflow-telemetry-session-id';
const DEV = 'mlflow.settings.telemetry.enable-dev-logging_v1';
// Our own keys: what could not leave with a page (a key per save, under this prefix), the
// tab session's records for the Settings page, the session's rollout roll, and the relay's
// "disabled" answer, which holds for the rest of the tab's session.
const SAVED = 'ui-telemetry.unsent_v1';
const RECENT_KEY = 'ui-telemetry.recent_v1';
const ROLL = 'ui-telemetry.rollout_v1';
const RELAY_OFF = 'ui-telemetry.relay-disabled_v1';

/** @type {PageConfig} */
let cfg;
/** @type {OffReason|null} */
let reason = 'server';

/** Why telemetry is off for this page, or null. @returns {OffReason|null} */
function decide() {
  if (cfg.disabled) return 'server';
  try {
    // MLflow's values are JSON: "false" is the only one that switches it off.
    if (localStorage.getItem(ENABLED) == 'false') return 'settings';
    if (navigator.globalPrivacyControl) return 'gpc';
    if (navigator.doNotTrack == '1') return 'dnt';
    if (sessionStorage.getItem(RELAY_OFF)) return 'relay';
    if (!inRollout(cfg.rolloutPercentage)) return 'rollout';
  } catch {
    return 'storage'; // a choice that cannot be read cannot be honoured
  }
  return null;
}

/** The tab session's roll, made once and kept, against the percentage. @param {number} pct */
function inRollout(pct) {
  if (pct >= 100 || pct <= 0) return pct > 0;
  /** @type {string|number|null} */
  let roll = sessionStorage.getItem(ROLL);
  if (roll == null) {
    roll = Math.random() * 100;
    sessionStorage.setItem(ROLL, String(roll));
  }
  return +roll < pct;
}

/** Off: no requests (a pending flush finds `reason` set), nothing kept. @param {OffReason} why */
function off(why) {
  reason = why;
  queue = [];
  recent = [];
  try {
    sessionStorage.removeItem(RECENT_KEY);
    takeSaved();
  } catch {}
}

/** The Settings choice changed, here or in another tab. @param {boolean} enabled */
function follow(enabled) {
  if (!enabled) off('settings');
  else if (reason == 'settings') reason = decide();
}

// ---- Capture ------------------------------------------------------------------------------

// Form fields report onValueChange, not also onClick: one record per interaction.
const FIELD = 'select,textarea,input:not([type=button],[type=submit],[type=reset],[type=image])';
/** componentViewId of each rendered element: a new one each time it enters the document.
 * @type {WeakMap<Element, string>} */
let views = new WeakMap();
/** @type {IntersectionObserver} */
let io;
/** @type {MutationObserver|undefined} */
let mo;

/** The element's data-component-* attributes are the record's params, named alike.
 * @param {Element} el @param {string} eventType @param {string} [value] */
function capture(el, eventType, value) {
  const data = /** @type {HTMLElement} */ (el).dataset;
  if (!data.componentType) return;
  let view = views.get(el);
  if (!view) {
    view = uuid();
    views.set(el, view);
  }
  logEvent({ ...data, eventType, componentViewId: view, value });
}

/** @param {MouseEvent} e */
function onClick(e) {
  const el = /** @type {Element} */ (e.target).closest?.('[data-component-id]');
  if (el && !el.matches(FIELD)) capture(el, 'onClick');
}

/** A value is sent only where the page vouches it holds nothing personal. @param {Event} e */
function onChange(e) {
  const el = /** @type {HTMLInputElement} */ (e.target);
  if (!el.dataset.componentId) return;
  const value = el.type == 'checkbox' ? String(el.checked) : el.value;
  capture(el, 'onValueChange', 'valueHasNoPii' in el.dataset ? value : undefined);
}

/** @param {SubmitEvent} e */
function onSubmit(e) {
  const form = /** @type {HTMLFormElement} */ (e.target);
  if (form.dataset.componentId) capture(form, 'onSubmit');
}

/** @param {IntersectionObserverEntry[]} entries */
function onVisible(entries) {
  for (const entry of entries) {
    if (entry.isIntersecting && entry.intersectionRatio >= 0.5) {
      io.unobserve(entry.target);
      capture(entry.target, 'onView');
    }
  }
}

/** A node entered the document: a new render, so fresh view ids and a new chance of onView.
 * @param {Node} node */
function rendered(node) {
  if (!(node instanceof Element)) return;
  for (const el of [node, ...node.querySelectorAll('[data-component-id]')]) {
    views.delete(el);
    if (el.matches('[data-component-id][data-component-view]')) io.observe(el);
  }
}

function watch() {
  io = new IntersectionObserver(onVisible, { threshold: 0.5 });
  mo = new MutationObserver((changes) => {
    for (const change of changes) change.addedNodes.forEach(rendered);
  });
  mo.observe(document.documentElement, { childList: true, subtree: true });
  rendered(document.documentElement);
}

// ---- Queue --------------------------------------------------------------------------------

// The params a record may carry, as the relay's schema names them.
const PARAMS = ['componentId', 'componentViewId', 'componentType', 'eventType', 'componentSubType', 'value'];
const BATCH = 20;
const MAX_QUEUE = 1000;
const RECENT = 50;
/** @type {TelemetryRecord[]} */
let queue = [];
// The tab session's last records: read when the page starts, written when it is hidden or
// left, so a click costs no storage round trip.
/** @type {TelemetryRecord[]} */
let recent = [];
let timer = 0;
let dev = false;
/** @type {string|undefined} */
let installationId;
/** @type {string|undefined} */
let sessionId;

// A version 4 UUID's layout: every 0, 1 or 8 stands for a random hex digit (the 8 for one of
// 8 to b, the variant), the 4 is the version.
const UUID = '10000000-1000-4000-8000-100000000000';

/** A random UUID. crypto.randomUUID exists only in secure contexts, and MLflow is often
 * opened over plain HTTP by an intranet name; getRandomValues works everywhere. */
function uuid() {
  const random = crypto.getRandomValues(new Uint8Array(36));
  return UUID.replace(/[018]/g, (digit, i) => {
    const keep = 15 >> (+digit / 4); // 8 keeps its top bit: 1000 + two random bits
    return (+digit ^ (random[i] & keep)).toString(16);
  });
}

/** Log one event by hand; elements with data-component-id are logged automatically. Only the
 * params a record may carry are taken from `e`, and only as text.
 * @param {UiEvent} e */
export function logEvent(e) {
  if (reason || cfg.disabledEvents.includes(e.componentId)) return;
  /** @type {Record<string, string>} */
  const params = {};
  for (const name of PARAMS) {
    if (typeof e[name] == 'string') params[name] = e[name];
  }
  params.componentViewId ||= uuid();
  installationId ||= id(localStorage, INSTALLATION);
  sessionId ||= id(sessionStorage, SESSION);
  /** @type {TelemetryRecord} */
  const record = {
    installation_id: installationId,
    session_id: sessionId,
    event_name: 'ui_event',
    timestamp_ns: Date.now() * 1e6,
    params,
    event_id: uuid(),
  };
  if (dev) console.log('[ui-telemetry]', record);
  recent = [...recent, record].slice(-RECENT);
  push([record]);
  if (queue.length >= BATCH) flush();
  else schedule(cfg.flushIntervalMs);
}

/** Add to the queue, oldest first out past the cap.
 * @param {TelemetryRecord[]} records @param {boolean} [first] back at the head (a retry) */
function push(records, first) {
  queue = first ? [...records, ...queue] : [...queue, ...records];
  queue = queue.slice(-MAX_QUEUE);
}

/** Flush after `ms`, or when a retry is due, whichever is later. @param {number} ms */
function schedule(ms) {
  if (timer || !queue.length || reason) return;
  timer = setTimeout(() => {
    timer = 0;
    flush();
  }, Math.max(ms, retryAt - Date.now()));
}

// ---- Transport ----------------------------------------------------------------------------

const BUDGET = 6e4; // keepalive requests share 64 KiB per page: stay under 60 KiB
let retryAt = 0;
let failures = 0;
let inflight = 0;

/** Send what is queued now; `leaving` when the page is being hidden or left. */
export function flush(leaving = false) {
  clearTimeout(timer);
  timer = 0;
  if (reason || !queue.length) return;
  // Offline, nothing is tried (a leaving page saves it all) until the online event.
  if (navigator.onLine && Date.now() >= retryAt) sendQueue(leaving);
  if (leaving) save();
  else if (navigator.onLine) schedule(cfg.flushIntervalMs);
}

/** Hand the queue to the browser, a batch at a time, within the keepalive budget. Past it,
 * a page that is leaving gives each batch a beacon of its own; one that stays waits for the
 * next flush. @param {boolean} leaving */
function sendQueue(leaving) {
  while (queue.length) {
    const batch = queue.slice(0, BATCH);
    const body = JSON.stringify({ records: batch });
    const fits = inflight + body.length <= BUDGET;
    if (!fits && !leaving) return;
    queue = queue.slice(batch.length);
    if (!(fits ? send(body, batch) : beacon(body))) return push(batch, true);
  }
}

/** @param {string} body */
function beacon(body) {
  try {
    return navigator.sendBeacon(cfg.endpoint, body);
  } catch {
    return false;
  }
}

/** Hand a batch to fetch (a beacon if fetch refuses); false when neither would take it.
 * @param {string} body @param {TelemetryRecord[]} batch */
function send(body, batch) {
  let request;
  try {
    // A string body goes as text/plain, which needs no CORS preflight; keepalive lets the
    // request outlive the page.
    request = fetch(cfg.endpoint, { method: 'POST', body, keepalive: true });
  } catch {
    return beacon(body);
  }
  inflight += body.length;
  request.then(
    (res) => {
      inflight -= body.length;
      answered(res, batch);
    },
    () => {
      inflight -= body.length;
      retry(batch); // offline, the backoff does not matter: the online event sends at once
    },
  );
  return true;
}

/** @param {Response} res @param {TelemetryRecord[]} batch */
function answered(res, batch) {
  if (res.status == 429 || res.status >= 500) return retry(batch, res.headers.get('Retry-After'));
  // Any other 4xx: the relay will never take this batch, so it is dropped.
  if (!res.ok) return;
  failures = 0;
  // A 2xx without a JSON body (204, a proxy's page) was delivered all the same.
  res.json().then(relayOff, () => {});
}

/** The relay says telemetry is off: so it is, for the rest of this tab's session.
 * @param {{status?: string}} answer */
function relayOff(answer) {
  if (answer?.status != 'disabled') return;
  try {
    sessionStorage.setItem(RELAY_OFF, '1');
  } catch {}
  off('relay');
}

/** Keep the batch; back off 1 s doubling to 60 s, jittered, or as long as a Retry-After (in
 * seconds) says. @param {TelemetryRecord[]} batch @param {string|null} [after] */
function retry(batch, after) {
  if (reason) return;
  push(batch, true);
  const seconds = parseFloat(/** @type {string} */ (after)); // NaN when absent or a date
  const backoff = Math.min(6e4, 1e3 * 2 ** failures++) * (0.5 + Math.random() / 2);
  retryAt = Date.now() + (seconds >= 0 ? seconds * 1e3 : backoff);
  schedule(0);
}

// ---- Storage ------------------------------------------------------------------------------

/** The id under `key`, made on first use (only ever while telemetry is on).
 * @param {Storage} store @param {string} key */
function id(store, key) {
  let value = store.getItem(key);
  if (!value) {
    value = uuid();
    store.setItem(key, value);
  }
  return value;
}

/** The page is being hidden or left: its records for the tab's next page, the queue out. */
function leave() {
  if (!reason) {
    try {
      sessionStorage.setItem(RECENT_KEY, JSON.stringify(recent));
    } catch {}
  }
  flush(true);
}

/** Keep for the next page load what could not leave with this one, under a key of its own:
 * two tabs saving at once never overwrite each other's records. */
function save() {
  if (!queue.length) return;
  try {
    localStorage.setItem(SAVED + uuid(), JSON.stringify(queue));
    queue = [];
  } catch {}
}

/** Remove every saved batch from storage and return their records. */
function takeSaved() {
  /** @type {TelemetryRecord[]} */
  const records = [];
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith(SAVED)) {
      records.push(...JSON.parse(/** @type {string} */ (localStorage.getItem(key))));
      localStorage.removeItem(key);
    }
  }
  return records;
}

/** Queue what earlier pages of this origin saved (this one too, back from the cache). */
function resend() {
  try {
    push(takeSaved());
    schedule(0);
  } catch {}
}

/** This tab session's last records and the dev-logging switch. */
function restore() {
  try {
    dev = localStorage.getItem(DEV) == 'true';
    recent = JSON.parse(sessionStorage.getItem(RECENT_KEY) || '[]');
  } catch {}
  resend();
}

// ---- Settings API and start ---------------------------------------------------------------

/** Turn telemetry on or off for this browser; every open tab follows. @param {boolean} enabled */
export function setEnabled(enabled) {
  try {
    localStorage.setItem(ENABLED, String(!!enabled)); // "true" or "false": MLflow's JSON
  } catch {
    return off('storage');
  }
  follow(enabled);
}

export const isEnabled = () => !reason;
/** @returns {OffReason|null} why telemetry is off, or null while it is on */
export const disabledReason = () => reason;
/** The last 50 records this tab session sent or queued, for the Settings page. */
export const getRecentEvents = () => recent.slice();

// Every listener is added with this signal, so shutdown() removes them all at once.
const listeners = new AbortController();

/** @param {EventTarget} target @param {string} type @param {(e: any) => void} fn */
function on(target, type, fn) {
  target.addEventListener(type, fn, { capture: true, signal: listeners.signal });
}

/** Remove every listener, observer and timer (tests, or a page that unloads the module). */
export function shutdown() {
  listeners.abort();
  mo?.disconnect();
  io?.disconnect();
  clearTimeout(timer);
}

function listen() {
  // Capture phase: a page's stopPropagation cannot hide an interaction from us, and the
  // Settings switch's own handler runs after we queued its change, so turning telemetry
  // off drops the very record that did it.
  on(document, 'click', onClick);
  on(document, 'change', onChange);
  on(document, 'submit', onSubmit);
  on(document, 'visibilitychange', () => {
    if (document.visibilityState == 'hidden') leave();
  });
  on(window, 'pagehide', leave);
  on(window, 'pageshow', (e) => {
    if (e.persisted && !reason) resend(); // back from the back-forward cache
  });
  on(window, 'online', () => {
    retryAt = 0;
    flush();
  });
  on(window, 'storage', (e) => {
    if (e.key == ENABLED) follow(e.newValue != 'false');
  });
}

/** Start from the page's #ui-telemetry-config block; called on import. */
function start() {
  const el = document.getElementById('ui-telemetry-config');
  if (!el) return;
  // The server renders every field, and says where the relay is, relative to the page (so a
  // sub-path proxy works): fetch and sendBeacon resolve it against the page's address.
  cfg = JSON.parse(/** @type {string} */ (el.textContent));
  reason = decide();
  if (reason) off(reason);
  else restore();
  listen();
  watch();
}

start();
