import { describe, test, mock, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { load, settle, saved, contents, KEYS, BUTTON } from './harness.mjs';

const CONTRACT_FIELDS = ['event_id', 'event_name', 'installation_id', 'params', 'session_id', 'timestamp_ns'];
const PARAM_FIELDS = ['componentId', 'componentSubType', 'componentType', 'componentViewId', 'eventType', 'value'];
let page;
afterEach(() => { page?.close(); page = undefined; mock.timers.reset(); mock.restoreAll(); });

/** 20 clicks fill a batch and send it at once, without waiting for the timer. */
const clicks = (n, sel = '#b') => { for (let i = 0; i < n; i++) page.click(sel); };

describe('opt-out: zero requests and nothing kept', () => {
  const cases = {
    'the page config says disabled': [{ config: { disabled: true, reason: 'DO_NOT_TRACK is set' } }, 'server'],
    'the Settings toggle is off': [{ storage: { [KEYS.enabled]: 'false' } }, 'settings'],
    'the browser sends Global Privacy Control': [{ navigator: { globalPrivacyControl: true } }, 'gpc'],
    'the browser sends Do Not Track': [{ navigator: { doNotTrack: '1' } }, 'dnt'],
    'localStorage cannot be read': [{ brokenStorage: true }, 'storage'],
    'rollout is 0 percent': [{ config: { rolloutPercentage: 0 } }, 'rollout'],
    'this session rolled outside the rollout': [{ config: { rolloutPercentage: 30 }, session: { 'ui-telemetry.rollout_v1': '30' } }, 'rollout'],
    'the relay said disabled earlier this session': [{ session: { 'ui-telemetry.relay-disabled_v1': '1' } }, 'relay'],
  };
  for (const [name, [opts, why]] of Object.entries(cases)) {
    test(name, async () => {
      mock.timers.enable({ apis: ['setTimeout', 'Date'] });
      page = await load({ html: BUTTON, ...opts });
      assert.equal(page.mod.isEnabled(), false);
      assert.equal(page.mod.disabledReason(), why);
      clicks(25);
      page.mod.logEvent({ componentId: 'x', componentType: 'button', eventType: 'onClick' });
      mock.timers.tick(60_000);
      page.hide();
      page.win.dispatchEvent(new page.win.Event('pagehide'));
      await settle();
      assert.equal(page.requests.length, 0);
      assert.equal(page.beacons.length, 0);
      if (why !== 'storage') {
        assert.equal(page.win.localStorage.getItem(KEYS.installation), null);
        assert.equal(page.win.sessionStorage.getItem(KEYS.session), null);
        assert.deepEqual(saved(page.win.localStorage), []);
        assert.equal(page.win.sessionStorage.getItem(KEYS.recent), null);
      }
      assert.deepEqual(page.mod.getRecentEvents(), []);
    });
  }

  test('a session keeps its rollout roll across reloads: inside sends on every page, outside never', async () => {
    const random = mock.method(Math, 'random', () => 0.29);
    page = await load({ html: BUTTON, config: { rolloutPercentage: 30 } });
    clicks(20);
    assert.equal(page.records().length, 20);
    const session = contents(page.win.sessionStorage);
    page.close();
    random.mock.mockImplementation(() => 0.99); // a new roll would fall outside
    page = await load({ html: BUTTON, config: { rolloutPercentage: 30 }, session });
    clicks(20);
    assert.equal(page.records().length, 20, 'the reload kept the roll');
    page.close();

    random.mock.mockImplementation(() => 0.3);
    page = await load({ html: BUTTON, config: { rolloutPercentage: 30 } });
    const outside = contents(page.win.sessionStorage);
    assert.equal(page.mod.disabledReason(), 'rollout');
    page.close();
    random.mock.mockImplementation(() => 0); // a new roll would fall inside
    page = await load({ html: BUTTON, config: { rolloutPercentage: 30 }, session: outside });
    clicks(25);
    page.hide();
    assert.equal(page.mod.disabledReason(), 'rollout');
    assert.equal(page.requests.length, 0);
  });

  test('setEnabled(false) drops the queue and the saved records, and the click that did it is never sent', async () => {
    page = await load({
      html: BUTTON + '<input id="t" type="checkbox" role="switch" checked data-component-id="mlflow.settings.telemetry.toggle-switch" data-component-type="switch">',
    });
    const toggle = page.doc.getElementById('t');
    toggle.addEventListener('change', () => page.mod.setEnabled(toggle.checked));
    clicks(3);
    page.win.localStorage.setItem(KEYS.saved, '[{"event_id":"old"}]');
    page.win.localStorage.setItem(`${KEYS.saved}other-tab`, '[{"event_id":"older"}]');
    assert.equal(page.mod.getRecentEvents().length, 3);
    toggle.checked = false;
    toggle.dispatchEvent(new page.win.Event('change', { bubbles: true }));
    assert.equal(page.win.localStorage.getItem(KEYS.enabled), 'false');
    assert.deepEqual(saved(page.win.localStorage), []);
    assert.deepEqual(page.mod.getRecentEvents(), []);
    assert.equal(page.win.sessionStorage.getItem(KEYS.recent), null);
    page.mod.flush();
    page.hide();
    await settle();
    assert.equal(page.requests.length, 0);
    assert.equal(page.mod.disabledReason(), 'settings');
    page.mod.setEnabled(true);
    assert.equal(page.mod.isEnabled(), true);
    clicks(20);
    assert.equal(page.requests.length, 1);
    assert.ok(page.records().every((r) => r.params.componentId === 'mlflow.test.button'));
  });

  test('another tab turning it off stops this one (storage event), and turning it on resumes', async () => {
    page = await load({ html: BUTTON });
    clicks(5);
    page.win.localStorage.setItem(KEYS.enabled, 'false');
    page.win.dispatchEvent(new page.win.StorageEvent('storage', { key: KEYS.enabled, newValue: 'false' }));
    assert.equal(page.mod.disabledReason(), 'settings');
    page.mod.flush();
    clicks(25);
    assert.equal(page.requests.length, 0);
    page.win.localStorage.setItem(KEYS.enabled, 'true');
    page.win.dispatchEvent(new page.win.StorageEvent('storage', { key: KEYS.enabled, newValue: 'true' }));
    assert.equal(page.mod.isEnabled(), true);
    clicks(20);
    assert.equal(page.records().length, 20);
  });

  test('a relay answer of {"status": "disabled"} stops it for the rest of the session', async () => {
    page = await load({ html: BUTTON });
    clicks(20);
    await page.answer(200, { status: 'disabled' });
    assert.equal(page.mod.disabledReason(), 'relay');
    assert.equal(page.win.sessionStorage.getItem('ui-telemetry.relay-disabled_v1'), '1');
    clicks(40);
    page.hide();
    assert.equal(page.requests.length, 1);
  });
});

describe('capture', () => {
  test('a click on or inside an instrumented element gives one onClick for the innermost', async () => {
    page = await load({ html: `<div data-component-id="mlflow.outer" data-component-type="card">${BUTTON}<p id="plain">text</p></div><p id="out">x</p>` });
    page.click('#inner');
    page.click('#b');
    page.click('#plain');
    page.click('#out');
    const recent = page.mod.getRecentEvents();
    assert.deepEqual(recent.map((r) => [r.params.componentId, r.params.componentType, r.params.eventType]), [
      ['mlflow.test.button', 'button', 'onClick'], ['mlflow.test.button', 'button', 'onClick'], ['mlflow.outer', 'card', 'onClick']]);
  });

  test('a click on a button-like input is an onClick; on any other form field, nothing', async () => {
    const field = (tag, type) => `<${tag} id="${tag}-${type}" ${type ? `type="${type}"` : ''} data-component-id="mlflow.${tag}.${type}" data-component-type="button">${tag == 'input' ? '' : `</${tag}>`}`;
    const buttons = ['button', 'submit', 'reset', 'image'];
    const others = ['', 'text', 'checkbox', 'radio', 'search'];
    page = await load({ html: [...buttons, ...others].map((t) => field('input', t)).join('') + field('select', '') + field('textarea', '') });
    for (const el of page.doc.querySelectorAll('[data-component-id]')) el.dispatchEvent(new page.win.MouseEvent('click', { bubbles: true }));
    const clicks = page.mod.getRecentEvents().filter((r) => r.params.eventType == 'onClick');
    assert.deepEqual(clicks.map((r) => r.params.componentId), buttons.map((t) => `mlflow.input.${t}`));
  });

  test('onValueChange carries a value only with data-value-has-no-pii', async () => {
    page = await load({ html: `
      <select id="s" data-component-id="mlflow.sort" data-component-type="simple_select" data-value-has-no-pii><option value="name">n</option><option value="date" selected>d</option></select>
      <input id="q" data-component-id="mlflow.search" data-component-type="input" value="secret search">
      <input id="c" type="checkbox" checked data-component-id="mlflow.theme" data-component-type="switch" data-value-has-no-pii>` });
    for (const id of ['s', 'q']) {
      page.click('#' + id); // a click on a form field is not also an onClick
      page.doc.getElementById(id).dispatchEvent(new page.win.Event('change', { bubbles: true }));
    }
    page.click('#c'); // unchecks it, and the browser fires change
    page.click('#c');
    const [s, q, c1, c2] = page.mod.getRecentEvents().map((r) => r.params);
    assert.equal(page.mod.getRecentEvents().length, 4);
    assert.deepEqual([s.eventType, s.value], ['onValueChange', 'date']);
    assert.deepEqual([q.eventType, 'value' in q], ['onValueChange', false]);
    assert.deepEqual([c1.eventType, c1.componentType, c1.value, c2.value], ['onValueChange', 'switch', 'false', 'true']);
    assert.ok(!JSON.stringify(page.mod.getRecentEvents()).includes('secret'));
  });

  test('onSubmit for a form with data-component-id', async () => {
    page = await load({ html: '<form id="f" data-component-id="mlflow.create.form" data-component-type="form"><input name="n" value="My Experiment"></form>' });
    page.doc.getElementById('f').dispatchEvent(new page.win.Event('submit', { bubbles: true, cancelable: true }));
    const [r] = page.mod.getRecentEvents();
    assert.deepEqual([r.params.componentId, r.params.eventType], ['mlflow.create.form', 'onSubmit']);
    assert.ok(!JSON.stringify(r).includes('My Experiment'));
  });

  test('onView only for opted-in elements, once per view, at half visible', async () => {
    page = await load({ html: `<div id="v" data-component-id="mlflow.banner" data-component-type="banner" data-component-view></div>
      <div id="nv" data-component-id="mlflow.card" data-component-type="card"></div>` });
    const [io] = page.observers;
    const v = page.doc.getElementById('v');
    io.show(page.doc.getElementById('nv'), 1);
    io.show(v, 0.4);
    assert.equal(page.mod.getRecentEvents().length, 0);
    io.show(v, 0.6);
    io.show(v, 1);
    assert.deepEqual(page.mod.getRecentEvents().map((r) => r.params.eventType), ['onView']);
    // Rendered again: a new view, seen again.
    v.remove();
    page.doc.body.append(v);
    await settle();
    io.show(v, 0.7);
    const views = page.mod.getRecentEvents().map((r) => r.params.componentViewId);
    assert.equal(views.length, 2);
    assert.notEqual(views[0], views[1]);
  });

  test('componentViewId is stable within a render and fresh after re-insertion', async () => {
    page = await load({ html: BUTTON });
    clicks(2);
    const b = page.doc.getElementById('b');
    b.remove();
    page.doc.body.append(b);
    await settle();
    clicks(1);
    const ids = page.mod.getRecentEvents().map((r) => r.params.componentViewId);
    assert.equal(ids[0], ids[1]);
    assert.notEqual(ids[1], ids[2]);
    assert.match(ids[2], /^[0-9a-f-]{36}$/);
  });

  test('disabledEvents are never sent; logEvent logs by hand', async () => {
    page = await load({ html: BUTTON, config: { disabledEvents: ['mlflow.test.button'] } });
    clicks(3);
    page.mod.logEvent({ componentId: 'mlflow.manual', componentType: 'modal', eventType: 'onView' });
    assert.deepEqual(page.mod.getRecentEvents().map((r) => r.params.componentId), ['mlflow.manual']);
  });

  test('every record carries the ids and nothing outside the contract', async () => {
    page = await load({ html: BUTTON.replace('data-component-type', 'data-secret="x" title="t" data-component-sub-type="primary" data-component-type') });
    clicks(2);
    page.mod.logEvent({ componentId: 'm', componentType: 'button', eventType: 'onClick', extra: 'leak', url: 'http://app.test/secret' });
    for (const r of page.mod.getRecentEvents()) {
      assert.ok(Object.keys(r).every((k) => CONTRACT_FIELDS.includes(k)), Object.keys(r).join());
      assert.ok(Object.keys(r.params).every((k) => PARAM_FIELDS.includes(k)), Object.keys(r.params).join());
      assert.equal(r.event_name, 'ui_event');
      assert.match(r.event_id, /^[0-9a-f-]{36}$/);
      assert.ok(Number.isInteger(r.timestamp_ns) && r.timestamp_ns > 1.7e18);
    }
    const [a, b] = page.mod.getRecentEvents();
    assert.equal(a.params.componentSubType, 'primary');
    assert.equal(a.installation_id, page.win.localStorage.getItem(KEYS.installation));
    assert.equal(a.session_id, page.win.sessionStorage.getItem(KEYS.session));
    assert.equal(a.installation_id, b.installation_id);
    assert.notEqual(a.event_id, b.event_id);
  });

  test('ids are random version 4 UUIDs, made where crypto.randomUUID is missing (plain HTTP)', async () => {
    page = await load({ html: BUTTON, insecure: true });
    clicks(3);
    const v4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const records = page.mod.getRecentEvents();
    assert.equal(records.length, 3);
    const ids = records.flatMap((r) => [r.event_id, r.params.componentViewId, r.installation_id, r.session_id]);
    for (const id of ids) assert.match(id, v4);
    assert.equal(new Set(records.map((r) => r.event_id)).size, 3);
  });

  test('dev logging prints each record to the console', async () => {
    const log = mock.method(console, 'log', () => {});
    page = await load({ html: BUTTON, storage: { [KEYS.dev]: 'true' } });
    clicks(2);
    assert.equal(log.mock.callCount(), 2);
    assert.equal(log.mock.calls[0].arguments[1].params.componentId, 'mlflow.test.button');
  });

  test('getRecentEvents keeps the last 50 of the tab session, across its pages', async () => {
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    for (let i = 0; i < 70; i++) page.mod.logEvent({ componentId: `c${i}`, componentType: 'button', eventType: 'onClick' });
    const names = (records) => records.map((r) => r.params.componentId);
    const last50 = Array.from({ length: 50 }, (_, i) => `c${i + 20}`);
    assert.deepEqual(names(page.mod.getRecentEvents()), last50);
    page.win.dispatchEvent(new page.win.Event('pagehide')); // leaving for the next page
    const session = contents(page.win.sessionStorage);
    page.close();
    // The Settings page is another page of the same tab session: it shows them too.
    page = await load({ session });
    assert.deepEqual(names(page.mod.getRecentEvents()), last50);
  });
});

describe('transport', () => {
  test('batches at 20 records, else every flushIntervalMs', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON, config: { flushIntervalMs: 5000 } });
    clicks(19);
    assert.equal(page.requests.length, 0);
    clicks(1);
    assert.equal(page.requests.length, 1);
    assert.equal(page.requests[0].body.records.length, 20);
    clicks(3);
    mock.timers.tick(4999);
    assert.equal(page.requests.length, 1);
    mock.timers.tick(1);
    assert.equal(page.requests.length, 2);
    const { init, url } = page.requests[1];
    assert.equal(url, 'http://app.test/ajax-api/3.0/mlflow/ui-telemetry');
    assert.equal(init.method, 'POST');
    assert.equal(init.keepalive, true);
    // A string body and no headers: browsers send it as text/plain;charset=UTF-8, a simple
    // request that needs no CORS preflight (e2e checks what Chromium really sends).
    assert.equal(typeof init.body, 'string');
    assert.equal(init.headers, undefined);
  });

  test('5xx, 429 and network errors back off 1 s doubling to 60 s with jitter', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    mock.method(Math, 'random', () => 0.999999);
    page = await load({ html: BUTTON });
    clicks(20);
    const gaps = [];
    for (let i = 0; i < 9; i++) {
      const before = page.requests.length;
      if (i % 3 === 2) await page.fail(); else await page.answer(i % 3 ? 429 : 503);
      let waited = 0;
      while (page.requests.length === before && waited < 70_000) { mock.timers.tick(100); waited += 100; }
      gaps.push(Math.round(waited / 1000));
    }
    assert.deepEqual(gaps, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert.ok(page.requests.every((r) => r.body.records.length === 20));
    assert.equal(new Set(page.requests.map((r) => r.body.records[0].event_id)).size, 1);
    await page.answer(200);
    clicks(20);
    assert.equal(page.requests.length, 11, 'after a success the next batch goes at once');
  });

  test('jitter spreads retries between half and all of the step', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    mock.method(Math, 'random', () => 0);
    page = await load({ html: BUTTON });
    clicks(20);
    await page.answer(500);
    mock.timers.tick(499);
    assert.equal(page.requests.length, 1);
    mock.timers.tick(1);
    assert.equal(page.requests.length, 2);
  });

  test('Retry-After wins over the backoff', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON });
    clicks(20);
    await page.answer(429, {}, { 'Retry-After': '7' });
    mock.timers.tick(6999);
    assert.equal(page.requests.length, 1);
    mock.timers.tick(1);
    assert.equal(page.requests.length, 2);
  });

  test('another 4xx drops the batch', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON });
    clicks(20);
    await page.answer(400, { status: 'error' });
    mock.timers.tick(120_000);
    assert.equal(page.requests.length, 1);
    clicks(20);
    assert.equal(page.requests.length, 2);
    assert.notEqual(page.requests[1].body.records[0].event_id, page.requests[0].body.records[0].event_id);
  });

  test('hiding the page sends at once with keepalive; when fetch throws, sendBeacon carries it', async () => {
    page = await load({ html: BUTTON });
    clicks(3);
    page.hide();
    assert.equal(page.requests.length, 1);
    assert.equal(page.requests[0].init.keepalive, true);
    page.close();
    page = await load({ html: BUTTON, fetchThrows: true });
    clicks(3);
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    assert.equal(page.beacons.length, 1);
    assert.equal(page.beacons[0].url, 'http://app.test/ajax-api/3.0/mlflow/ui-telemetry');
    assert.equal(page.beacons[0].body.records.length, 3);
  });

  test('leaving with more than 60 KiB queued: keepalive carries what fits, beacons the rest', async () => {
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    clicks(1000);
    page.nav.onLine = true;
    page.hide();
    const inflight = page.requests.reduce((n, r) => n + r.init.body.length, 0);
    assert.ok(inflight <= 60 * 1024, `${inflight} bytes in flight`);
    assert.ok(page.requests.length >= 5);
    const beaconed = page.beacons.flatMap((b) => b.body.records);
    assert.ok(beaconed.length >= 500, `${beaconed.length} records by beacon`);
    assert.equal(page.records().length + beaconed.length, 1000, 'all of it left the page');
    assert.deepEqual(saved(page.win.localStorage), [], 'nothing had to be saved');
  });

  test('a page that stays sends no more than 60 KiB at once; the rest waits for the next flush', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    clicks(1000);
    page.nav.onLine = true;
    page.win.dispatchEvent(new page.win.Event('online'));
    const first = page.requests.length;
    const inflight = page.requests.reduce((n, r) => n + r.init.body.length, 0);
    assert.ok(inflight <= 60 * 1024 && first < 50, `${first} requests, ${inflight} bytes`);
    assert.equal(page.beacons.length, 0);
    while (page.open()) await page.answer(200);
    mock.timers.tick(5000);
    assert.ok(page.requests.length > first);
  });

  for (const [status, body] of [[200, '<html>a proxy</html>'], [201, {}], [202, {}], [204, '']]) {
    test(`a ${status}${typeof body == 'string' ? ' without a JSON body' : ''} is delivered: never sent again`, async () => {
      mock.timers.enable({ apis: ['setTimeout', 'Date'] });
      page = await load({ html: BUTTON });
      clicks(20);
      await page.answer(status, body);
      mock.timers.tick(120_000);
      assert.equal(page.requests.length, 1);
      assert.equal(page.mod.isEnabled(), true);
    });
  }

  test('the queue holds at most 1,000 records; the oldest go', async () => {
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    page.mod.logEvent({ componentId: 'first', componentType: 'button', eventType: 'onClick' });
    clicks(1000);
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    const kept = saved(page.win.localStorage);
    assert.equal(kept.length, 1000);
    assert.ok(kept.every((r) => r.params.componentId === 'mlflow.test.button'));
  });

  test('offline: nothing is tried until the online event', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    clicks(25);
    mock.timers.tick(60_000);
    assert.equal(page.requests.length, 0);
    page.nav.onLine = true;
    page.win.dispatchEvent(new page.win.Event('online'));
    assert.equal(page.records().length, 25);
  });

  test('what cannot leave with the page is saved and sent on the next load', async () => {
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    clicks(5);
    const ids = page.mod.getRecentEvents().map((r) => r.event_id);
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    assert.equal(saved(page.win.localStorage).length, 5);
    const storage = contents(page.win.localStorage);
    page.close();
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON, storage });
    assert.deepEqual(saved(page.win.localStorage), []);
    mock.timers.tick(0);
    assert.deepEqual(page.records().map((r) => r.event_id), ids);
  });

  test('back from the back-forward cache, what its pagehide saved is sent', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    page = await load({ html: BUTTON, navigator: { onLine: false } });
    clicks(4);
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    assert.equal(saved(page.win.localStorage).length, 4);
    page.nav.onLine = true;
    const shown = new page.win.Event('pageshow');
    Object.defineProperty(shown, 'persisted', { value: true });
    page.win.dispatchEvent(shown);
    mock.timers.tick(0);
    assert.equal(page.records().length, 4);
    assert.deepEqual(saved(page.win.localStorage), []);
  });

  test('a save never reads or rewrites what another tab saved: each writes a key of its own', async () => {
    const calls = [];
    page = await load({ html: BUTTON, navigator: { onLine: false }, spyStorage: calls });
    // Another tab saves while this one is open.
    page.win.localStorage.setItem(`${KEYS.saved}another-tab`, '[{"event_id":"theirs"}]');
    clicks(3);
    calls.length = 0;
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    const touched = calls.filter(([, key]) => String(key).startsWith(KEYS.saved));
    assert.equal(touched.length, 1);
    assert.equal(touched[0][0], 'setItem');
    assert.notEqual(touched[0][1], `${KEYS.saved}another-tab`);
    assert.equal(saved(page.win.localStorage).length, 4, 'both tabs\' records are kept');
  });

  test('a refused beacon on leaving saves the records instead', async () => {
    page = await load({ html: BUTTON, fetchThrows: true, beaconOk: false });
    clicks(4);
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    assert.equal(saved(page.win.localStorage).length, 4);
  });

  test('no page config block: the module stays inert', async () => {
    page = await load({ config: null, html: BUTTON });
    clicks(30);
    assert.equal(page.mod.isEnabled(), false);
    assert.equal(page.requests.length, 0);
  });
});
