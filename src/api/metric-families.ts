// The Prometheus metric families the mailer exports (DESIGN.md's names): help, labels and buckets, on their own Registry.
// Each class from its own module: prom-client's index also loads the Pushgateway (node:http,
// node:https, node:zlib), the default metrics (@opentelemetry/api, perf_hooks) and the cluster
// aggregator (node:cluster), none of which the mailer uses: ~8 ms of CPU at every start.
import Counter from 'prom-client/lib/counter'
import Gauge from 'prom-client/lib/gauge'
import Histogram from 'prom-client/lib/histogram'
import Registry from 'prom-client/lib/registry'
import { pastExpiryPendingMeaning } from '../outbox/past-expiry-pending.ts'

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30]

/**
 * Said in the help of the gauges read from the database at a scrape: every process of a deployment
 * (api and worker machines alike, each machine of one group) reads the same table, so a sum over
 * instances counts a database once per machine. Every process exports them all the same (from one
 * role only, a deployment of one group would still export them once per machine, and the backlog
 * alert would lose its series whenever that role's machines are down).
 */
const DATABASE_WIDE =
  'every process exports the same reading: aggregate with max by (db), not sum, across instances'

/** Registered in this order, which is the exposition's. */
export function createMetricFamilies() {
  const registry = new Registry()
  const registers = [registry]
  return {
    registry,
    sends: new Counter({
      name: 'outbox_sends_total',
      help: 'Rows settled, by outcome: one per row each time its outcome is recorded, whether or not it reached the provider (throttled: the row went back to wait uncounted, for an answer of its own or behind a pause, pacing turn or outage another send met: one 429 can add many); outbox_graph_throttled_total counts the sends and lookups told to wait',
      labelNames: ['db', 'outcome'] as const,
      registers,
    }),
    duration: new Histogram({
      name: 'outbox_send_duration_seconds',
      help: 'Wall time of the send call (Graph sendMail or the configured transport)',
      labelNames: ['db'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    }),
    throttled: new Counter({
      name: 'outbox_graph_throttled_total',
      help: 'Sends and mailbox lookups told to wait, one per send or lookup (429/503/504, a spent quota, no Graph token: a refused credential, Entra down or unreachable; Graph out of reach or refusing every token) and rescheduled without burning an attempt, by cause: throttled (a 429, Entra throttling codes that come with a 400, a mailbox quota: its sending quota spent, its store full), unavailable (a 503 or 504 from Graph, a 5xx from Entra for a token: either down), unreachable (no connection to Graph or Entra), other (a refused credential, every token refused, a mailbox lookup asked again later); and by service: entra (a wait for a token) or graph (an answer of Graph, or Graph out of reach); sum without (cause, service) for them all; not the rows a pause or pacing turn another send caused held back, which outbox_sends_total{outcome="throttled"} counts as well, nor Graph refusing the sender mailbox itself, which outbox_graph_mailbox_refused_total counts',
      labelNames: ['db', 'cause', 'service'] as const,
      registers,
    }),
    // A refusal waits as a throttle does, but is no throttle: apart, so a throttle's alert can leave it out.
    mailboxRefused: new Counter({
      name: 'outbox_graph_mailbox_refused_total',
      help: 'Sends and mailbox lookups Graph refused because it refuses the sender mailbox itself, one per send or lookup (404 for MAIL_FROM: unknown, not enabled for Graph; 403 ErrorAccessDenied: the app may not send from it, MAIL_FROM or a mailbox a row names), each rescheduled like a throttle (its mailbox paused, the attempt not counted); outbox_mailboxes_paused_refused counts the mailboxes so paused now',
      labelNames: ['db'] as const,
      registers,
    }),
    reclaimed: new Counter({
      name: 'outbox_leases_reclaimed_total',
      help: 'Expired leases taken back from dead or stuck workers',
      labelNames: ['db'] as const,
      registers,
    }),
    leasesLost: new Counter({
      name: 'outbox_leases_lost_total',
      help: 'Writes refused because this worker no longer held the lease',
      labelNames: ['db'] as const,
      registers,
    }),
    loopErrors: new Counter({
      name: 'outbox_loop_errors_total',
      help: 'Errors caught in background loops (they are retried, never fatal)',
      labelNames: ['db'] as const,
      registers,
    }),
    tokenRefreshes: new Counter({
      name: 'outbox_token_refreshes_total',
      help: 'Graph access-token requests by outcome',
      labelNames: ['outcome'] as const,
      registers,
    }),
    // Entra down or refusing shows here even while no row is due (a row's wait is `throttled` above).
    tokenFailures: new Counter({
      name: 'outbox_token_failures_total',
      help: 'Failed Graph access-token requests by code (an AADSTS code, token_http_<status>, token_timeout, token_network)',
      labelNames: ['code'] as const,
      registers,
    }),
    rows: new Gauge({
      name: 'outbox_rows',
      help: `Outbox rows by status (pending, sending: at each scrape; sent, failed, cancelled: recounted every 5 minutes, from indexes); ${DATABASE_WIDE}`,
      labelNames: ['db', 'status'] as const,
      registers,
    }),
    oldestPending: new Gauge({
      name: 'outbox_oldest_pending_age_seconds',
      help: `Age of the oldest due pending row (database time; 0 when none); ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    // A paused mailbox's rows wait uncounted and, but for MAIL_FROM's, not due: neither the age
    // above nor the throttle counter (one count per pause) says that one is paused now.
    mailboxesPaused: new Gauge({
      name: 'outbox_mailboxes_paused',
      help: `Sender mailboxes a provider throttle pauses now (a 429 or 503's Retry-After, Graph refusing the mailbox: no send from it starts until its pause ends; 0 when none), however long ago the pause began; ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    // The cause apart, not a label of the gauge above: a label would split its one series per
    // database (the total every alert and the docs name) into one per cause.
    mailboxesPausedRefused: new Gauge({
      name: 'outbox_mailboxes_paused_refused',
      help: `Of outbox_mailboxes_paused, the sender mailboxes paused because Graph refuses the mailbox itself (404 ErrorInvalidUser: a mistyped MAIL_FROM; 403: the app not allowed to send from it), not a throttle; ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    // What "Mailbox refused" alerts on: a refused pause no row sends from ends by itself, as
    // status's exit 5 reads it (refused-pause-rows.ts), so the count above alone would fire for it.
    refusedMailboxPending: new Gauge({
      name: 'outbox_refused_mailbox_pending',
      help: `Pending rows that send from a mailbox of outbox_mailboxes_paused_refused: their own from or template's from_address, and, while it is MAIL_FROM of a live worker, those naming none (not a row whose from_address has placeholders, known once rendered); what outbox-mailer status exits 5 for and /v1/stats' refusedMailboxPending; 0 while a refused pause no row sends from stands; ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    heldBackPending: new Gauge({
      name: 'outbox_pending_held_back',
      help: `Pending rows not due yet because a pacing turn (MAILBOX_RATE_PER_MINUTE) or their mailbox's pause put them later: a backlog outbox_oldest_pending_age_seconds does not count; ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    // A row waiting past its expiresAt for its interrupted send's lookup is not due: in no gauge above.
    pastExpiryPending: new Gauge({
      name: 'outbox_pending_past_expiry',
      help: `${pastExpiryPendingMeaning('Pending rows', 'outbox_oldest_pending_age_seconds')}; ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    queueUsage: new Gauge({
      name: 'outbox_notification_queue_usage',
      help: `pg_notification_queue_usage(): fill level 0..1 of the NOTIFY queue; ${DATABASE_WIDE}`,
      labelNames: ['db'] as const,
      registers,
    }),
    databaseUp: new Gauge({
      name: 'outbox_database_up',
      help: '1 when the last scrape query of this database succeeded (idle: or an earlier one whose numbers still stand, the outbox empty and its LISTEN session listening, silent since, for at most a minute)',
      labelNames: ['db'] as const,
      registers,
    }),
    // A refused credential holds every row (uncounted) while readiness of --role all stays 200: this says so.
    credentialRefused: new Gauge({
      name: 'outbox_graph_credential_refused',
      help: '1 while Entra refuses the Graph credential (an AADSTS code: an expired or unregistered certificate, a revoked secret, a removed app), labelled certificate or secret: rows wait uncounted once no cached token serves, and Entra is asked again once a minute; 0 once a token comes. Absent without the Graph transport or a worker',
      labelNames: ['credential'] as const,
      registers,
    }),
    // A MAIL_FROM with a typo holds its rows (uncounted) instead of failing them: this says so.
    senderMailboxRefused: new Gauge({
      name: 'outbox_sender_mailbox_refused',
      help: '1 while Graph refuses the configured sender mailbox MAIL_FROM itself (unknown, not enabled for Graph, or the app may not send from it): rows that name no other sender wait; 0 once a send from it is accepted. Absent without the Graph transport or a worker',
      labelNames: ['mailbox'] as const,
      registers,
    }),
    // Graph out of reach (no connection) or refusing every token holds every row (uncounted): this says so.
    graphOutage: new Gauge({
      name: 'outbox_graph_outage',
      help: '1 while this process cannot reach Graph (connections refused, no such host, a certificate that fails verification: cause unreachable) or Graph refuses every token, a fresh one too (401: cause unauthorized): every row waits uncounted and one request probes per back-off (5 s doubling to 5 minutes); 0 once Graph answers. Absent without the Graph transport or a worker',
      labelNames: ['cause'] as const,
      registers,
    }),
    // An expired certificate stops every mail at once (Entra refuses it): this lets an alert say so
    // a month ahead, as check-config does when run.
    certificateExpiry: new Gauge({
      name: 'outbox_graph_certificate_expiry_timestamp_seconds',
      help: 'Unix time at which the Graph certificate (GRAPH_CERTIFICATE) expires, its notAfter, labelled with its SHA-1 thumbprint as the Entra portal shows it: alert ahead of it, e.g. min(outbox_graph_certificate_expiry_timestamp_seconds) - time() < 30 * 86400; during a rotation, count by (thumbprint) says which machines hold which. Absent with a client secret, without the Graph transport or a worker',
      labelNames: ['thumbprint'] as const,
      registers,
    }),
    listenerConnected: new Gauge({
      name: 'outbox_listener_connected',
      help: '1 while the LISTEN connection is listening; 0 while it connects or reconnects, or after it fell back to polling (LISTEN impossible, e.g. a transaction pooler). Absent where no LISTEN is wanted: serve --role api, LISTEN_MODE=poll',
      labelNames: ['db'] as const,
      registers,
    }),
  }
}
