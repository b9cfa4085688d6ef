// ui-telemetry browser module: anonymous ui_event records from elements with
// data-component-id, batched to the relay. No dependencies, no eval, no inline script.
// Every byte ships to every user: keep it small, and say why in comments (esbuild strips them).

/**
 * @typedef {{componentId: string, componentType: string, eventType: string,
 *   componentViewId?: string, componentSubType?: string, value?: string}} UiEvent
 * @typedef {{installation_id: string, session_id: string, event_name: 'ui_event',
 *   timestamp_ns: number, params: UiEvent, event_id: string}} TelemetryRecord
 * @typedef {{disabled: boolean, reason: string|null, endpoint: string,
 *   rolloutPercentage: number, disabledEvents: string[], flushIntervalMs: number}} PageConfig
 * @typedef {'server'|'settings'|'storage'|'gpc'|'dnt'|'relay'|'rollout'} OffReason
 */

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

const BATCH = 20;
const MAX_QUEUE = 1000;
const RECENT = 50;
const BUDGET = 60 * 1024; // keepalive requests share 64 KiB per page: leave headroom

/** @type {PageConfig} */
let cfg;
/** @type {OffReason|null} */
let reason = 'server';
/** @type {TelemetryRecord[]} */
let queue = [];
// The tab session's last records: read when the page starts, written when it is hidden or
// left, so a click costs no storage round trip.
/** @type {TelemetryRecord[]} */
let recent = [];
let timer = 0;
let retryAt = 0;
let failures = 0;
let inflight = 0;
// The keepalive budget is full: wait for an answer instead of re-serialising on every click.
let blocked = false;
let dev = false;
/** @type {string|undefined} */
let installationId;
/** @type {string|undefined} */
let sessionId;
/** @type {WeakMap<Element, string>} */
let views = new WeakMap();
/** @type {IntersectionObserver|undefined} */
let io;
/** @type {MutationObserver|undefined} */
let mo;
/** @type {Array<() => void>} */
let undo = [];

const uuid = () => crypto.randomUUID();
// Only a browser that says it is offline is: undefined (unknown) counts as online.
const online = () => navigator.onLine !== false;
const ls = () => localStorage;
const ss = () => sessionStorage;

/** @returns {OffReason|null} */
function decide() {
  if (cfg.disabled || !cfg.endpoint) return 'server';
  try {
    // MLflow's values are JSON: "false" is the only one that switches it off.
    if (ls().getItem(ENABLED) == 'false') return 'settings';
    if (navigator.globalPrivacyControl) return 'gpc';
    if (navigator.doNotTrack == '1') return 'dnt';
    if (ss().getItem(RELAY_OFF)) return 'relay';
    const pct = cfg.rolloutPercentage;
    if (pct < 100) {
      if (pct <= 0) return 'rollout';
      let roll = ss().getItem(ROLL);
      if (roll == null) {
        roll = String(Math.random() * 100); // in the rollout when below the percentage
        ss().setItem(ROLL, roll);
      }
      if (+roll >= pct) return 'rollout';
    }
  } catch {
    return 'storage'; // a choice that cannot be read cannot be honoured
  }
  return null;
}

/** Off: no requests, nothing kept. @param {OffReason} why */
function off(why) {
  reason = why;
  queue = [];
  recent = [];
  clearTimeout(timer);
  timer = 0;
  try {
    ss().removeItem(RECENT_KEY);
    takeSaved();
  } catch {}
}

/** @param {Storage} store @param {string} key */
function id(store, key) {
  let value = store.getItem(key);
  if (!value) {
    value = uuid();
    store.setItem(key, value);
  }
  return value;
}

/** Log one event by hand; elements with data-component-id are logged automatically.
 * @param {UiEvent} e */
export function logEvent(e) {
  if (reason || cfg.disabledEvents.includes(e.componentId)) return;
  /** @type {UiEvent} */
  const params = {
    componentId: e.componentId,
    componentViewId: e.componentViewId || uuid(),
    componentType: e.componentType,
    eventType: e.eventType,
  };
  if (e.componentSubType) params.componentSubType = e.componentSubType;
  if (typeof e.value == 'string') params.value = e.value;
  if (!installationId) installationId = id(ls(), INSTALLATION);
  if (!sessionId) sessionId = id(ss(), SESSION);
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
  recent.push(record);
  if (recent.length > RECENT) recent.shift();
  push([record]);
  if (queue.length >= BATCH && !blocked) flush();
  else schedule(cfg.flushIntervalMs);
}

/** Add to the queue, oldest first out past the cap. @param {TelemetryRecord[]} records */
function push(records, front = false) {
  if (front) queue.unshift(...records);
  else queue.push(...records);
  if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
}

/** @param {number} ms */
function schedule(ms) {
  if (timer || !queue.length || reason) return;
  timer = setTimeout(() => {
    timer = 0;
    flush();
  }, Math.max(ms, retryAt - Date.now()));
}

/** Send what is queued now; `leaving` when the page is being hidden or left. */
export function flush(leaving = false) {
  clearTimeout(timer);
  timer = 0;
  if (reason || !queue.length) return;
  if (online() && Date.now() >= retryAt)
    while (queue.length) {
      const batch = queue.slice(0, BATCH);
      const body = JSON.stringify({ records: batch });
      // Over the keepalive budget: when leaving a beacon gets its own chance, else wait.
      const fits = inflight + body.length <= BUDGET;
      blocked = !fits && !leaving;
      if (blocked) break;
      queue = queue.slice(batch.length);
      const handed = fits ? send(body, batch) : beacon(body);
      if (!handed) {
        push(batch, true);
        break;
      }
    }
  if (leaving) save();
  else if (online()) schedule(cfg.flushIntervalMs);
}

/** @param {string} body */
function beacon(body) {
  try {
    return navigator.sendBeacon(cfg.endpoint, body);
  } catch {
    return false;
  }
}

/** Hand a batch to the browser; false when neither fetch nor a beacon would take it.
 * @param {string} body @param {TelemetryRecord[]} batch */
function send(body, batch) {
  let request;
  try {
    // text/plain needs no CORS preflight; keepalive lets it outlive the page.
    request = fetch(cfg.endpoint, {
      method: 'POST',
      body,
      keepalive: true,
      headers: { 'Content-Type': 'text/plain' },
    });
  } catch {
    return beacon(body);
  }
  inflight += body.length;
  const done = () => {
    inflight -= body.length;
    if (blocked) {
      blocked = false;
      flush();
    }
  };
  request.then(
    (res) => {
      done();
      if (res.ok) {
        failures = 0;
        res.json().then((j) => {
          if (j.status == 'disabled') {
            try {
              ss().setItem(RELAY_OFF, '1');
            } catch {}
            off('relay');
          }
        }, Object);
      } else if (res.status == 429 || res.status >= 500) retry(batch, res.headers.get('Retry-After'));
      // Any other 4xx: the relay will never take this batch, so it is dropped.
    },
    () => {
      done();
      // Offline, the backoff does not matter: the online event sends at once.
      retry(batch);
    },
  );
  return true;
}

/** Back off 1 s doubling to 60 s, jittered; a Retry-After in seconds wins.
 * @param {TelemetryRecord[]} batch @param {string|null} [after] */
function retry(batch, after) {
  if (reason) return;
  push(batch, true);
  const seconds = after ? +after : NaN;
  retryAt =
    Date.now() +
    (seconds >= 0 ? seconds * 1e3 : Math.min(6e4, 1e3 * 2 ** failures++) * (0.5 + Math.random() / 2));
  if (online()) schedule(0);
}

/** The page is being hidden or left: its records for the tab's next page, the queue out. */
function leave() {
  if (!reason)
    try {
      ss().setItem(RECENT_KEY, JSON.stringify(recent));
    } catch {}
  flush(true);
}

/** Keep for the next page load what could not leave with this one, under a key of its own:
 * two tabs saving at once never overwrite each other's records. */
function save() {
  if (!queue.length || reason) return;
  try {
    ls().setItem(SAVED + uuid(), JSON.stringify(queue));
    queue = [];
  } catch {}
}

/** Remove every saved batch from storage and return their records. */
function takeSaved() {
  /** @type {TelemetryRecord[]} */
  const records = [];
  for (const key of Object.keys(ls())) {
    if (key.startsWith(SAVED)) {
      records.push(...JSON.parse(/** @type {string} */ (ls().getItem(key))));
      ls().removeItem(key);
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

/** @param {Element} el @param {string} eventType @param {string} [value] */
function fromElement(el, eventType, value) {
  const d = /** @type {HTMLElement} */ (el).dataset;
  if (!d.componentType) return;
  let view = views.get(el);
  if (!view) {
    view = uuid();
    views.set(el, view);
  }
  logEvent({
    componentId: /** @type {string} */ (d.componentId),
    componentType: d.componentType,
    componentSubType: d.componentSubType,
    eventType,
    componentViewId: view,
    value,
  });
}

/** A node entered the document: a new render, so fresh view ids and a new chance of onView.
 * @param {Node} node */
function rendered(node) {
  if (!(node instanceof Element)) return;
  for (const el of [node, ...node.querySelectorAll('[data-component-id]')]) {
    views.delete(el); // a no-op for an element that has no view id
    if (io && el.matches('[data-component-id][data-component-view]')) io.observe(el);
  }
}

/** @param {EventTarget} target @param {string} type @param {(e: any) => void} fn */
function on(target, type, fn) {
  target.addEventListener(type, fn, true);
  undo.push(() => target.removeEventListener(type, fn, true));
}

/** Start from the page's #ui-telemetry-config block; called on import. */
function start() {
  const el = document.getElementById('ui-telemetry-config');
  if (!el || cfg) return;
  cfg = { rolloutPercentage: 100, disabledEvents: [], flushIntervalMs: 5e3, ...JSON.parse(el.textContent || '{}') };
  // The server says where the relay is; relative to the page, so a sub-path proxy works.
  if (cfg.endpoint) cfg.endpoint = new URL(cfg.endpoint, document.baseURI).href;
  reason = decide();
  if (reason) off(reason);
  else {
    try {
      dev = ls().getItem(DEV) == 'true';
      recent = JSON.parse(ss().getItem(RECENT_KEY) || '[]');
    } catch {}
    resend();
  }
  // Capture phase: a page's stopPropagation cannot hide an interaction from us, and the
  // Settings switch's own handler runs after we queued its change, so turning telemetry
  // off drops the very record that did it.
  on(document, 'click', (e) => {
    const t = e.target.closest?.('[data-component-id]');
    // Form fields report onValueChange instead: one record per interaction.
    if (t && !t.matches('select,textarea,input:not([type=button],[type=submit],[type=reset],[type=image])'))
      fromElement(t, 'onClick');
  });
  on(document, 'change', (e) => {
    const t = e.target;
    if (t.dataset?.componentId)
      fromElement(t, 'onValueChange', 'valueHasNoPii' in t.dataset ? (t.type == 'checkbox' ? '' + t.checked : t.value) : undefined);
  });
  on(document, 'submit', (e) => {
    if (e.target.dataset?.componentId) fromElement(e.target, 'onSubmit');
  });
  on(document, 'visibilitychange', () => {
    if (document.visibilityState == 'hidden') leave();
  });
  on(window, 'pagehide', leave);
  // Back from the back-forward cache: what the pagehide saved can go now.
  on(window, 'pageshow', (e) => {
    if (e.persisted && !reason) resend();
  });
  on(window, 'online', () => {
    retryAt = 0;
    flush();
  });
  on(window, 'storage', (e) => {
    if (e.key == ENABLED) follow(e.newValue != 'false');
  });
  if (globalThis.IntersectionObserver)
    io = new IntersectionObserver(
      (entries) => {
        for (const x of entries)
          if (x.isIntersecting && x.intersectionRatio >= 0.5) {
            io.unobserve(x.target);
            fromElement(x.target, 'onView');
          }
      },
      { threshold: 0.5 },
    );
  mo = new MutationObserver((ms) => ms.forEach((m) => m.addedNodes.forEach(rendered)));
  mo.observe(document.documentElement, { childList: true, subtree: true });
  rendered(document.documentElement);
}

/** Turn telemetry on or off for this browser; every open tab follows. @param {boolean} enabled */
export function setEnabled(enabled) {
  try {
    ls().setItem(ENABLED, JSON.stringify(!!enabled));
  } catch {
    return off('storage');
  }
  follow(enabled);
}

/** The Settings choice changed, here or in another tab. @param {boolean} enabled */
function follow(enabled) {
  if (!enabled) off('settings');
  else if (reason == 'settings') reason = decide();
}

export const isEnabled = () => !reason;
/** @returns {OffReason|null} why telemetry is off, or null while it is on */
export const disabledReason = () => reason;
/** The last 50 records this tab session sent or queued, for the Settings page. */
export const getRecentEvents = () => recent.slice();

/** Remove every listener, observer and timer (tests, or a page that unloads the module). */
export function shutdown() {
  undo.forEach((f) => f());
  undo = [];
  mo?.disconnect();
  io?.disconnect();
  clearTimeout(timer);
}

start();
