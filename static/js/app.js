// The served UI's own behaviour: dialogs, tabs, tables, the info banner and Settings.
// Telemetry itself lives in telemetry.js; this file only calls its exports.
import * as telemetry from './telemetry.js';

const THEME = 'mlflow.settings.theme_v1';
const ALERT_DISMISSED = 'mlflow.telemetry.info.alert.dismissed_v1';

/** @type {Record<string, string>} */
const REASONS = {
  settings: 'Off: you turned it off here.',
  gpc: 'Off: your browser sends Global Privacy Control.',
  dnt: 'Off: your browser sends Do Not Track.',
  storage: 'Off: this browser does not let the page read its storage, so your choice could not be honoured.',
  rollout: 'Off: this browser session is not among those that send usage data.',
  relay: 'Off: the server declined usage data for the rest of this session.',
};

/** @param {string} key */
function read(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || 'null');
  } catch {
    return null;
  }
}

/** @param {string} key @param {unknown} value */
function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {}
}

function applyTheme() {
  document.documentElement.dataset.theme = read(THEME) === 'dark' ? 'dark' : 'light';
}

function dialogs() {
  document.addEventListener('click', (e) => {
    const target = /** @type {Element} */ (e.target);
    const opener = target.closest('[data-opens]');
    if (opener) {
      const dialog = /** @type {HTMLDialogElement|null} */ (document.getElementById(opener.getAttribute('data-opens') || ''));
      dialog?.showModal();
    }
    if (target.closest('[data-closes]')) target.closest('dialog')?.close();
  });
  for (const form of document.querySelectorAll('form[data-adds-row]')) {
    form.addEventListener('submit', () => {
      const name = /** @type {HTMLInputElement} */ (form.querySelector('input[name="name"]')).value.trim();
      const body = document.querySelector(`#${form.getAttribute('data-adds-row')} tbody`);
      if (name && body) {
        const row = body.insertRow(0);
        row.insertCell().textContent = name;
        row.insertCell().textContent = 'new';
        row.insertCell().textContent = new Date().toISOString().slice(0, 10);
      }
      /** @type {HTMLFormElement} */ (form).reset();
    });
  }
}

function tables() {
  for (const input of document.querySelectorAll('input[data-filters]')) {
    input.addEventListener('input', () => {
      const query = /** @type {HTMLInputElement} */ (input).value.toLowerCase();
      for (const row of document.querySelectorAll(`#${input.getAttribute('data-filters')} tbody tr`))
        /** @type {HTMLElement} */ (row).hidden = !row.textContent?.toLowerCase().includes(query);
    });
  }
  for (const button of document.querySelectorAll('button[data-sort]')) {
    button.addEventListener('click', () => {
      const column = Number(button.getAttribute('data-sort'));
      const body = /** @type {HTMLTableSectionElement} */ (button.closest('table')?.tBodies[0]);
      const rows = [...body.rows];
      const key = (/** @type {HTMLTableRowElement} */ r) => r.cells[column].textContent || '';
      const asc = button.getAttribute('aria-sort') !== 'ascending';
      rows.sort((a, b) => key(a).localeCompare(key(b), undefined, { numeric: true }) * (asc ? 1 : -1));
      button.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      body.append(...rows);
    });
  }
}

function tabs() {
  const list = document.querySelector('[role="tablist"]');
  if (!list) return;
  const all = /** @type {HTMLElement[]} */ ([...list.querySelectorAll('[role="tab"]')]);
  const select = (/** @type {HTMLElement} */ tab) => {
    for (const t of all) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute('aria-controls') || '');
      if (panel) panel.hidden = !on;
    }
    tab.focus();
  };
  list.addEventListener('click', (e) => {
    const tab = /** @type {Element} */ (e.target).closest('[role="tab"]');
    if (tab) select(/** @type {HTMLElement} */ (tab));
  });
  list.addEventListener('keydown', (e) => {
    const i = all.indexOf(/** @type {HTMLElement} */ (document.activeElement));
    const step = { ArrowRight: 1, ArrowLeft: -1 }[/** @type {KeyboardEvent} */ (e).key];
    if (i >= 0 && step) select(all[(i + step + all.length) % all.length]);
  });
}

function banner() {
  const alert = document.getElementById('telemetry-alert');
  if (!alert) return;
  alert.hidden = !telemetry.isEnabled() || read(ALERT_DISMISSED) === true;
  document.getElementById('telemetry-alert-close')?.addEventListener('click', () => {
    write(ALERT_DISMISSED, true);
    alert.hidden = true;
  });
}

function settings() {
  const toggle = /** @type {HTMLInputElement|null} */ (document.getElementById('telemetry-switch'));
  if (!toggle) return;
  const reasonText = /** @type {HTMLElement} */ (document.getElementById('telemetry-reason'));
  const sent = /** @type {HTMLElement} */ (document.getElementById('sent-records'));
  const config = JSON.parse(document.getElementById('ui-telemetry-config')?.textContent || '{}');
  const theme = /** @type {HTMLInputElement} */ (document.getElementById('theme-switch'));

  const render = () => {
    const why = telemetry.disabledReason();
    toggle.checked = why === null;
    // The user's choice cannot override the server, the browser's signal or blocked storage.
    toggle.disabled = why === 'server' || why === 'gpc' || why === 'dnt' || why === 'storage';
    reasonText.textContent = why === 'server'
      ? `Off: ${config.reason || 'turned off by the server administrator'}.`
      : why ? REASONS[why] : 'On.';
    const records = telemetry.getRecentEvents();
    sent.textContent = records.length ? records.map((r) => JSON.stringify(r)).join('\n') : 'Nothing yet.';
  };
  toggle.addEventListener('change', () => {
    telemetry.setEnabled(toggle.checked);
    render();
  });
  theme.checked = read(THEME) === 'dark';
  theme.addEventListener('change', () => {
    write(THEME, theme.checked ? 'dark' : 'light');
    applyTheme();
  });
  document.getElementById('refresh-sent')?.addEventListener('click', () => setTimeout(render));
  // Another tab flipped the switch: telemetry.js already followed; show it here too.
  window.addEventListener('storage', () => setTimeout(render));
  setInterval(render, 1000);
  render();
}

applyTheme();
dialogs();
tables();
tabs();
banner();
settings();
