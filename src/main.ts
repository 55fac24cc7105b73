// The composition root: the CLI, the wiring of every concrete piece, signals and exit codes.
import { hostname } from 'node:os'
import pkg from '../package.json' with { type: 'json' }
import { createApp } from './api/app.ts'
import { createMetrics, type Metrics } from './api/metrics.ts'
import { checkConfig } from './check-config.ts'
import { systemClock } from './clock.ts'
import { type Config, ENV_VARS, loadConfig } from './config.ts'
import { assertSchemaCurrent, migrate } from './db/migrate.ts'
import { type DbHandle, openDb } from './db/open.ts'
import { AppError, describeError, isAppError } from './errors.ts'
import { createLogger, type Logger } from './log.ts'
import type { MailboxLookup } from './outbox/deliver.ts'
import { createDrainer, type Drainer } from './outbox/drainer.ts'
import type { EngineEventHandler } from './outbox/events.ts'
import { createHealthMonitor } from './outbox/health-monitor.ts'
import { createListener, type Listener } from './outbox/listener.ts'
import { createPgSendGate } from './outbox/pg-send-gate.ts'
import { openGate, type SendGate } from './outbox/send-gate.ts'
import type { OutboundMail, Sender } from './outbox/sender.ts'
import { createSlots } from './outbox/slots.ts'
import { createDiscardSender } from './transport/discard-sender.ts'
import { createFileSender } from './transport/file-sender.ts'
import { createGraphTransport } from './transport/graph-transport.ts'

export const VERSION: string = pkg.version

/** Exit codes: documented in --help and the README. */
export const EXIT = { ok: 0, failure: 1, usage: 2, schema: 3 } as const

export type Role = 'all' | 'worker' | 'api'

const HELP = `outbox-mailer ${VERSION}: Postgres outbox rows in, e-mail out through Microsoft Graph.

Usage:
  outbox-mailer serve [--role all|worker|api]   run the workers and/or the HTTP API (default: all)
  outbox-mailer migrate                         apply the embedded schema migrations to every database
  outbox-mailer send-test --to ADDRESS          send one test message with the configured transport
  outbox-mailer check-config [--connect] [--role all|worker|api]
                                                validate the environment; --connect also reaches the
                                                databases and fetches a Graph token
  outbox-mailer --version | --help

Exit codes: 0 ok, 1 failure, 2 bad usage or configuration, 3 database schema missing, outdated or newer.

Environment (every variable is validated at start):
${ENV_VARS.map((v) => `  ${v.name.padEnd(30)} ${v.meaning} (default: ${v.default})`).join('\n')}
`

export interface Running {
  stop(reason: string): Promise<void>
  port: number | null
  drainers: Map<string, Drainer>
  listeners: Map<string, Listener>
}

export interface ServeOptions {
  role: Role
  log: Logger
  dev?: boolean
  onEvent?: EngineEventHandler
  /** Overrides the transport (tests, dev). */
  sender?: Sender
}

interface Transport {
  sender: Sender
  lookup: MailboxLookup | null
  /** Limits shared by every worker on one database (Graph only). */
  gateFor(db: DbHandle, holder: string): SendGate
  problem(): string | null
}

function createTransport(
  config: Config,
  log: Logger,
  onTokenRefresh?: (outcome: 'success' | 'failure') => void,
): Transport {
  const none = { lookup: null, gateFor: () => openGate, problem: () => null }
  switch (config.transport) {
    case 'discard':
      return { sender: createDiscardSender(), ...none }
    case 'file':
      return { sender: createFileSender(config.fileDir), ...none }
    case 'graph': {
      const g = config.graph!
      const graph = createGraphTransport(g, config.mailFrom!, {
        fetch,
        clock: systemClock,
        log,
        ...(onTokenRefresh ? { onTokenRefresh } : {}),
      })
      return {
        sender: graph.sender,
        lookup: g.mailboxLookup
          ? (mail, signal) =>
              graph.sender.lookupSentMessage(mail.from.address, mail.outboxId, signal)
          : null,
        gateFor: (db, holder) =>
          createPgSendGate({
            db: db.db,
            clock: systemClock,
            log,
            holder,
            maxConcurrency: config.limits.graphMaxConcurrency,
            ratePerMinute: config.limits.mailboxRatePerMinute,
            slotTtlMs: g.requestTimeoutMs + 15_000,
          }),
        problem: graph.problem,
      }
    }
  }
}

/** Starts the engine for every database and the HTTP surface; returns a handle to stop it. */
export async function serve(config: Config, o: ServeOptions): Promise<Running> {
  const log = o.log
  if (o.role !== 'worker' && !o.dev && !config.api.jwtSecret && !config.api.jwksUrl) {
    throw new AppError(
      'config_invalid',
      'the API needs auth: set API_JWT_SECRET or API_JWKS_URL (or run `serve --role worker` for health and metrics only)',
    )
  }
  const handles: DbHandle[] = config.databases.map((d) =>
    openDb({ name: d.name, url: d.url, log, maxConnections: config.worker.concurrency + 4 }),
  )
  for (const h of handles) {
    try {
      await assertSchemaCurrent(h.pool, h.name)
    } catch (e) {
      if (isAppError(e)) {
        await Promise.all(handles.map((x) => x.close()))
        throw e
      }
      // Unreachable now: start anyway; the loops retry and readiness reports it.
      log.warn('database unreachable at start; will keep trying', { db: h.name, err: e })
    }
  }

  const drainers = new Map<string, Drainer>()
  const listeners = new Map<string, Listener>()
  let transportProblem: () => string | null = () => null
  // Metrics need the health monitor, which needs the drainers: bind late.
  let metrics: Metrics | null = null
  const onEvent: EngineEventHandler = (e) => {
    o.onEvent?.(e)
    metrics?.observe(e)
  }
  if (o.role !== 'api') {
    const transport = o.sender
      ? { sender: o.sender, lookup: null, gateFor: () => openGate, problem: () => null }
      : createTransport(config, log, (outcome) => metrics?.incTokenRefresh(outcome))
    const sender = transport.sender
    transportProblem = transport.problem
    const slots = createSlots(config.worker.concurrency)
    const worker = {
      id: `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`,
      host: hostname(),
      pid: process.pid,
      version: VERSION,
    }
    for (const [i, h] of handles.entries()) {
      const dbConfig = config.databases[i]!
      let listener: Listener | null = null
      const drainer = createDrainer({
        dbName: h.name,
        db: h.db,
        sender,
        gate: transport.gateFor(h, worker.id),
        slots,
        clock: systemClock,
        log,
        worker,
        config: config.worker,
        mailFrom: config.mailFrom,
        lookup: transport.lookup,
        ambiguousPolicy: config.graph?.ambiguousSendPolicy ?? 'resend',
        // Without a listener the backstop poll is the only wake-up, so it must be quick.
        pollIntervalMs: () =>
          listener?.state() === 'polling'
            ? Math.min(1000, config.worker.pollIntervalSeconds * 1000)
            : config.worker.pollIntervalSeconds * 1000,
        onEvent,
      })
      listener = createListener({
        db: h.name,
        url: dbConfig.listenUrl,
        log,
        clock: systemClock,
        wake: () => drainer.wake(),
        onEvent,
        checkIntervalMs: config.worker.listenCheckSeconds * 1000,
        mode: config.worker.listenMode,
      })
      drainers.set(h.name, drainer)
      listeners.set(h.name, listener)
      listener.start()
      drainer.start()
    }
    log.info('workers started', {
      databases: handles.map((h) => h.name),
      transport: sender.name,
      concurrency: config.worker.concurrency,
      workerId: worker.id,
    })
  }

  const health = createHealthMonitor({
    databases: handles.map((h) => ({
      name: h.name,
      pool: h.pool,
      drainer: drainers.get(h.name) ?? null,
      listener: listeners.get(h.name) ?? null,
    })),
    wedgedAfterMs: Math.max(3 * config.worker.pollIntervalSeconds * 1000, 120_000),
    transportProblem: () => transportProblem(),
  })

  metrics = createMetrics({ databases: handles, health })
  let app: ReturnType<typeof createApp>
  try {
    app = createApp({
      databases: handles,
      auth: config.api,
      dev: o.dev === true,
      health,
      metrics,
      log,
      version: VERSION,
      // A worker-only process serves what the platform needs: health, readiness, metrics.
      surface: o.role === 'worker' ? 'operations' : 'all',
    })
  } catch (e) {
    await Promise.all([...drainers.values()].map((d) => d.stop(0)))
    await Promise.all([...listeners.values()].map((l) => l.stop()))
    await Promise.all(handles.map((h) => h.close()))
    throw e
  }
  const server = Bun.serve({ hostname: config.http.host, port: config.http.port, fetch: app.fetch })
  log.info('http listening', { host: config.http.host, port: server.port, role: o.role })

  // Fly does not restart a machine for failing checks: a wedged loop must end the process.
  let failedChecks = 0
  const watchdog = setInterval(() => {
    const live = health.liveness()
    failedChecks = live.ok ? 0 : failedChecks + 1
    if (failedChecks >= 3) {
      log.error('worker loop wedged; exiting so the platform restarts us', {
        problems: live.problems,
      })
      process.exit(EXIT.failure)
    }
  }, 20_000)

  let stopped: Promise<void> | null = null
  return {
    port: server.port ?? null,
    drainers,
    listeners,
    stop(reason) {
      stopped ??= (async () => {
        log.info('stopping', { reason, graceSeconds: config.worker.shutdownGraceSeconds })
        clearInterval(watchdog)
        await Promise.all([...listeners.values()].map((l) => l.stop()))
        await Promise.all(
          [...drainers.values()].map((d) => d.stop(config.worker.shutdownGraceSeconds * 1000)),
        )
        await server.stop()
        await Promise.all(handles.map((h) => h.close()))
        log.info('stopped')
      })()
      return stopped
    },
  }
}

function parseRole(argv: string[]): Role {
  const i = argv.indexOf('--role')
  const value = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--role='))?.slice(7)
  if (value === undefined) return 'all'
  if (value === 'all' || value === 'worker' || value === 'api') return value
  throw new AppError('config_invalid', `--role must be all, worker or api (got "${value}")`)
}

/** Runs `serve` until SIGTERM/SIGINT; a second signal exits at once. */
export async function runUntilSignalled(config: Config, o: ServeOptions): Promise<never> {
  const running = await serve(config, o)
  let signals = 0
  const onSignal = (signal: string) => {
    signals += 1
    if (signals > 1) {
      o.log.warn('second signal; exiting now', { signal })
      process.exit(EXIT.failure)
    }
    void running.stop(signal).then(
      () => process.exit(EXIT.ok),
      (err) => {
        o.log.error('shutdown failed', { err })
        process.exit(EXIT.failure)
      },
    )
  }
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))
  return new Promise<never>(() => {})
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
}

/** Sends one message through the configured transport and prints the outcome: a first-run check. */
async function sendTest(config: Config, argv: string[], log: Logger): Promise<number> {
  const to = flag(argv, '--to')
  const from = flag(argv, '--from') ?? config.mailFrom
  if (!to || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(to)) {
    console.error('send-test needs --to ADDRESS (a valid e-mail address)')
    return EXIT.usage
  }
  if (!from) {
    console.error('send-test needs MAIL_FROM or --from ADDRESS')
    return EXIT.usage
  }
  const transport = createTransport(config, log)
  const id = `send-test-${Date.now()}`
  const mail: OutboundMail = {
    outboxId: id,
    tenant: 'default',
    attempt: 1,
    correlationId: id,
    from: { address: from },
    to: [{ address: to }],
    cc: [],
    bcc: [],
    replyTo: [],
    subject: `outbox-mailer test message (${new Date().toISOString()})`,
    text: `This is a test message from outbox-mailer ${VERSION} (${config.transport} transport).`,
    html: null,
    importance: null,
    headers: {},
    attachments: [],
  }
  const outcome = await transport.sender.send(mail, AbortSignal.timeout(60_000))
  const detail = [
    outcome.httpStatus ? `HTTP ${outcome.httpStatus}` : null,
    outcome.requestId ? `request-id ${outcome.requestId}` : null,
  ].filter(Boolean)
  if (outcome.kind === 'sent') {
    console.log(
      `sent: ${config.transport} accepted the message${detail.length ? ` (${detail.join(', ')})` : ''}`,
    )
    return EXIT.ok
  }
  console.error(
    `${outcome.kind === 'retry' ? 'not sent (transient)' : 'not sent'}: ${outcome.code}: ${outcome.message}${detail.length ? ` (${detail.join(', ')})` : ''}`,
  )
  return EXIT.failure
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(VERSION)
    return EXIT.ok
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP)
    return command === undefined ? EXIT.usage : EXIT.ok
  }
  if (command === 'check-config') {
    let role: Role
    try {
      role = parseRole(rest)
    } catch (e) {
      console.error(describeError(e))
      return EXIT.usage
    }
    // Reports every problem instead of stopping at the first; usable in CI and before a deploy.
    const r = await checkConfig(process.env, { connect: rest.includes('--connect'), role })
    for (const c of r.checks) console.log(c.startsWith('warning: ') ? c : `ok: ${c}`)
    for (const p of r.problems) console.error(`problem: ${p}`)
    console.log(r.ok ? 'configuration OK' : `${r.problems.length} problem(s)`)
    return r.ok ? EXIT.ok : EXIT.usage
  }
  let config: Config
  try {
    config = loadConfig(process.env, { requireDatabase: command !== 'send-test' })
  } catch (e) {
    console.error(describeError(e))
    return EXIT.usage
  }
  const log = createLogger(config.logLevel)
  try {
    switch (command) {
      case 'migrate': {
        for (const d of config.databases) {
          const r = await migrate({ url: d.listenUrl, log: log.child({ db: d.name }) })
          console.log(
            `${d.name}: ${r.applied.length ? `applied ${r.applied.join(', ')}` : 'up to date'} (schema version ${r.version})`,
          )
        }
        return EXIT.ok
      }
      case 'serve':
        return await runUntilSignalled(config, { role: parseRole(rest), log })
      case 'send-test':
        return await sendTest(config, rest, log)
      default:
        console.error(`unknown command "${command}"; see outbox-mailer --help`)
        return EXIT.usage
    }
  } catch (e) {
    console.error(describeError(e))
    if (isAppError(e, 'config_invalid')) return EXIT.usage
    if (
      isAppError(e) &&
      ['schema_missing', 'schema_outdated', 'schema_ahead', 'migration_checksum_mismatch'].includes(
        e.code,
      )
    ) {
      return EXIT.schema
    }
    return EXIT.failure
  }
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)))
}
