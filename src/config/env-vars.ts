// The documented environment: each variable the binary reads, its default and its meaning.
/** Every variable the binary reads, with its default; `--help` prints this table. */
export const ENV_VARS: readonly { name: string; default: string; meaning: string }[] = [
  { name: 'DATABASE_URL', default: '-', meaning: 'the database to drain (a pooled URL is fine)' },
  {
    name: 'LISTEN_DATABASE_URL',
    default: 'DATABASE_URL',
    meaning: 'direct (session) URL for LISTEN and migrations',
  },
  {
    name: 'MAILER_DATABASES',
    default: '-',
    meaning: 'JSON array for several databases: [{"name","url","listenUrl"?}]',
  },
  { name: 'MAIL_TRANSPORT', default: 'graph', meaning: 'graph | file | discard' },
  { name: 'MAIL_FILE_DIR', default: './mail-out', meaning: 'directory for the file transport' },
  { name: 'MAIL_FROM', default: '-', meaning: 'default sender mailbox (user id or UPN)' },
  {
    name: 'MAIL_FROM_ALLOWED',
    default: '-',
    meaning:
      'the only mailboxes a row may name in "from" (addresses, apart by commas); unset: any the app may send as',
  },
  // The forms the start takes (config/entra-ids.ts): it refuses any other.
  {
    name: 'GRAPH_TENANT_ID',
    default: '-',
    meaning:
      'Directory (tenant) ID: a GUID (8-4-4-4-12 hexadecimal digits), or a domain verified in the tenant (contoso.onmicrosoft.com); not common, organizations or consumers',
  },
  {
    name: 'GRAPH_CLIENT_ID',
    default: '-',
    meaning:
      'Application (client) ID of the app registration: a GUID (8-4-4-4-12 hexadecimal digits)',
  },
  { name: 'GRAPH_CERTIFICATE', default: '-', meaning: 'PEM certificate (for the thumbprint)' },
  { name: 'GRAPH_CERTIFICATE_FILE', default: '-', meaning: 'path of the PEM certificate' },
  {
    name: 'GRAPH_PRIVATE_KEY',
    default: '-',
    meaning: 'PEM private key (PKCS#8, or PKCS#1 "BEGIN RSA PRIVATE KEY"; unencrypted)',
  },
  { name: 'GRAPH_PRIVATE_KEY_FILE', default: '-', meaning: 'path of the PEM private key' },
  { name: 'GRAPH_CLIENT_SECRET', default: '-', meaning: 'client secret, instead of a certificate' },
  {
    name: 'GRAPH_ASSERTION_ALGORITHM',
    default: 'PS256',
    meaning: 'PS256 (x5t#S256) or RS256 (x5t) for the client assertion',
  },
  {
    name: 'GRAPH_AUTHORITY_URL',
    default: 'https://login.microsoftonline.com',
    meaning:
      'Entra authority origin, without the tenant (national clouds, tests); the same cloud as GRAPH_API_URL',
  },
  {
    name: 'GRAPH_API_URL',
    default: 'https://graph.microsoft.com/v1.0',
    meaning: 'Graph base URL, ending in its version: /v1.0 (or /beta)',
  },
  {
    name: 'GRAPH_SAVE_TO_SENT_ITEMS',
    default: 'true',
    meaning: 'keep a copy in the mailbox Sent Items',
  },
  {
    name: 'GRAPH_REQUEST_TIMEOUT_SECONDS',
    default: '30',
    meaning: 'deadline of one Graph request (at most half of LEASE_SECONDS)',
  },
  {
    name: 'GRAPH_MAILBOX_LOOKUP',
    default: 'false',
    meaning: 'after a crash mid-send, look the message up in the mailbox (needs Mail.Read)',
  },
  {
    name: 'AMBIGUOUS_SEND_POLICY',
    default: 'resend',
    meaning: 'without lookup, a crash mid-send: resend (at-least-once) or hold (fail for review)',
  },
  {
    name: 'THROTTLE_DEADLINE_SECONDS',
    default: '86400',
    meaning:
      'a row throttled (waiting uncounted) for longer than this since its first throttle in a row fails',
  },
  { name: 'HOST', default: '0.0.0.0', meaning: 'HTTP listen address' },
  { name: 'PORT', default: '8080', meaning: 'HTTP listen port' },
  {
    name: 'METRICS_PORT',
    default: '-',
    meaning:
      '/metrics on this port only (a private one, e.g. 9091), not on PORT; 0: one the system chooses, logged',
  },
  { name: 'API_JWT_SECRET', default: '-', meaning: 'HS256 secret for API bearer tokens' },
  {
    name: 'API_JWT_SECRET_PREVIOUS',
    default: '-',
    meaning: 'former HS256 secret, still accepted while callers move to API_JWT_SECRET (rotation)',
  },
  { name: 'API_JWKS_URL', default: '-', meaning: 'JWKS URL for API bearer tokens' },
  { name: 'API_JWT_ISSUER', default: '-', meaning: 'required iss of API tokens' },
  { name: 'API_JWT_AUDIENCE', default: '-', meaning: 'required aud of API tokens' },
  { name: 'LOG_LEVEL', default: 'info', meaning: 'debug | info | warn | error' },
  { name: 'WORKER_CONCURRENCY', default: '10', meaning: 'sends in flight per process' },
  { name: 'LEASE_SECONDS', default: '60', meaning: 'lease length of a claimed row' },
  {
    name: 'HEARTBEAT_SECONDS',
    default: 'LEASE_SECONDS/3',
    meaning:
      'lease heartbeat period (with Graph at most LEASE_SECONDS - GRAPH_REQUEST_TIMEOUT_SECONDS - 2; unset, shortened to it)',
  },
  { name: 'MAX_ATTEMPTS', default: '8', meaning: 'attempts for rows that set none' },
  {
    name: 'RETRY_BASE_SECONDS',
    default: '10',
    meaning: 'first retry delay; doubles per attempt, with jitter',
  },
  { name: 'RETRY_MAX_SECONDS', default: '3600', meaning: 'cap of the retry delay' },
  {
    name: 'POLL_INTERVAL_SECONDS',
    default: '30',
    meaning:
      'backstop poll when no notification came (1s in poll-only mode and while the LISTEN session reconnects)',
  },
  {
    name: 'LISTEN_CHECK_SECONDS',
    default: '15',
    meaning: 'how often the LISTEN connection is checked for a half-open socket',
  },
  {
    name: 'LISTEN_MODE',
    default: 'auto',
    meaning: 'auto (LISTEN, fall back to polling) or poll (never LISTEN: transaction poolers)',
  },
  {
    name: 'SHUTDOWN_GRACE_SECONDS',
    default: '20',
    meaning: 'time in-flight sends get after SIGTERM',
  },
  {
    name: 'GRAPH_MAX_CONCURRENCY',
    default: '4',
    meaning: 'concurrent Graph requests per app across all workers',
  },
  {
    name: 'MAILBOX_RATE_PER_MINUTE',
    default: '30',
    meaning: 'sends per mailbox per minute across all workers (0 = no limit)',
  },
  {
    name: 'MIGRATE_DEADLINE_SECONDS',
    default: '270',
    meaning:
      "migrate's whole run, every database: past it, what runs is stopped and rolled back, naming where (0 = none; within Fly's 5-minute release_command_timeout)",
  },
]
