// Types for static/js/telemetry.js, the ui-telemetry browser module.

/** One interaction, as the relay's schema names it. */
export interface UiEvent {
  /** A fixed id from the page's markup, e.g. "mlflow.experiments.create-button". */
  componentId: string;
  /** One of the 38 design-system component types, e.g. "button", "switch". */
  componentType: string;
  eventType: 'onClick' | 'onSubmit' | 'onValueChange' | 'onView';
  /** Defaults to a fresh UUID. */
  componentViewId?: string;
  componentSubType?: string;
  /** Only a short code without spaces or "@"; the relay drops anything else. */
  value?: string;
}

/** What the module sends: exactly these fields, never more. */
export interface TelemetryRecord {
  installation_id: string;
  session_id: string;
  event_name: 'ui_event';
  timestamp_ns: number;
  params: UiEvent & { componentViewId: string };
  event_id: string;
}

/** Why telemetry is off. */
export type OffReason = 'server' | 'settings' | 'storage' | 'gpc' | 'dnt' | 'relay' | 'rollout';

/** Queue one event by hand; does nothing while telemetry is off or the id is disabled. */
export function logEvent(event: UiEvent): void;
/** Send the queue now; `leaving` saves what cannot be sent for the next page load. */
export function flush(leaving?: boolean): void;
/** Turn telemetry on or off for this browser; every open tab follows within a second. */
export function setEnabled(enabled: boolean): void;
export function isEnabled(): boolean;
/** Why telemetry is off, or null while it is on. */
export function disabledReason(): OffReason | null;
/** The last 50 records this tab session sent or queued (across its pages). */
export function getRecentEvents(): TelemetryRecord[];
/** Remove every listener, observer and timer. */
export function shutdown(): void;
