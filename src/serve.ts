// Composition of `serve`: every database's engine and listener, the HTTP surface, a guarded start, signals.
import { hostname } from 'node:os'
import { createApp, createMetricsApp } from './api/app.ts'
import { createMetrics, type Metrics } from './api/metrics.ts'
import { systemClock } from './clock.ts'
import type { Config, ServeRole } from './config.ts'
import { assertSchemaCurrent } from './db/migrate.ts'
import { type DbHandle, openDb } from './db/open.ts'
import { AppError, describeError, EXIT, isAppError } from './errors.ts'
import type { Logger } from './log.ts'
import { createDrainer, type Drainer } from './outbox/drainer.ts'
import type { EngineEventHandler } from './outbox/events.ts'
import type { HealthSource } from './outbox/health.ts'
import { createHealthMonitor } from './outbox/health-monitor.ts'
import { createListener, type Listener } from './outbox/listener.ts'
import type { Sender } from './outbox/sender.ts'
import { createSlots } from './outbox/slots.ts'
import { createTransport, immediateTransport, type Transport } from './transport-wiring.ts'
import { VERSION } from './version.ts'

/** `serve --role`: config decides by it which settings are needed, serve what it starts. */
export type Role = ServeRole

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
    openDb({
      name: d.name,
      url: d.url,
      log,
      maxConnections: config.worker.concurrency + 4,
      // The worker's statements ride its LISTEN session when it is free: idle, one connection.
      shareListenSession:
        o.role !== 'api' && config.worker.listenMode === 'auto' && d.listenUrl === d.url,
    }),
  )
  const drainers = new Map<string, Drainer>()
  const listeners = new Map<string, Listener>()
  let transportProblem: () => string | null = () => null
  // Metrics need the health monitor, which needs the drainers: bind late.
  let metrics: Metrics | null = null
  const onEvent: EngineEventHandler = (e) => {
    o.onEvent?.(e)
    metrics?.observe(e)
  }
  // A start that fails part-way (a schema verdict, a Graph credential, the API's auth, the port)
  // leaves nothing running behind it: no loop, no LISTEN session, no pool.
  const begin = async () => {
    // Each LISTEN session connects while the schema is checked, so a start waits for one new
    // connection rather than two in a row. A wake before its drainer starts is moot: a start claims.
    if (o.role !== 'api') startListeners(config, handles, listeners, drainers, onEvent, log)
    const schemaCurrent = await checkSchemas(handles, log)
    if (o.role !== 'api') {
      const transport = o.sender
        ? immediateTransport(o.sender)
        : createTransport(config, log, (outcome) => metrics?.incTokenRefresh(outcome))
      transportProblem = transport.problem
      startDrainers(config, handles, transport, listeners, drainers, onEvent, log)
    }
    const health = createHealthMonitor({
      databases: handles.map((h) => ({
        name: h.name,
        statements: h.statements,
        drainer: drainers.get(h.name) ?? null,
        listener: listeners.get(h.name) ?? null,
      })),
      schemaCurrent,
      wedgedAfterMs: Math.max(3 * config.worker.pollIntervalSeconds * 1000, 120_000),
      transportProblem: () => transportProblem(),
    })
    metrics = createMetrics({ databases: handles, health, listenMode: config.worker.listenMode })
    const deps = {
      databases: handles,
      auth: config.api,
      dev: o.dev === true,
      health,
      metrics,
      log,
      version: VERSION,
      // A worker-only process serves what the platform needs: health, readiness, metrics.
      surface: o.role === 'worker' ? ('operations' as const) : ('all' as const),
      metricsApart: config.http.metricsPort !== null,
    }
    const app = createApp(deps)
    let metricsServer: ReturnType<typeof Bun.serve> | null = null
    if (config.http.metricsPort !== null) {
      metricsServer = listen(
        { ...config.http, port: config.http.metricsPort },
        createMetricsApp(deps).fetch,
      )
      servers.push(metricsServer)
    }
    const server = listen(config.http, app.fetch)
    servers.push(server)
    return { health, server, metricsPort: metricsServer?.port ?? null }
  }
  // Every listener started, /metrics' own included, so that a failed start and a stop close them all.
  const servers: ReturnType<typeof Bun.serve>[] = []
  let health: HealthSource
  let server: ReturnType<typeof Bun.serve>
  let metricsPort: number | null
  try {
    ;({ health, server, metricsPort } = await begin())
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop(true)))
    await Promise.all([...drainers.values()].map((d) => d.stop(0)))
    await Promise.all([...listeners.values()].map((l) => l.stop()))
    await Promise.all(handles.map((h) => h.close()))
    throw e
  }
  log.info('http listening', {
    host: config.http.host,
    port: server.port,
    role: o.role,
    ...(metricsPort !== null ? { metricsPort } : {}),
  })

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
        // Together: claims end with the signal, and the grace is not spent waiting for a listener
        // (a connect in progress, a check) before it even begins: kill_timeout counts from here.
        await Promise.all([
          ...[...listeners.values()].map((l) => l.stop()),
          ...[...drainers.values()].map((d) => d.stop(config.worker.shutdownGraceSeconds * 1000)),
        ])
        await Promise.all(servers.map((s) => s.stop()))
        await Promise.all(handles.map((h) => h.close()))
        log.info('stopped')
      })()
      return stopped
    },
  }
}

/** Binds the HTTP server; Bun's own error guesses "port in use?" and names neither host nor port. */
function listen(
  http: Config['http'],
  fetch: (req: Request) => Response | Promise<Response>,
): ReturnType<typeof Bun.serve> {
  try {
    return Bun.serve({ hostname: http.host, port: http.port, fetch })
  } catch (e) {
    const address = http.host.includes(':')
      ? `[${http.host}]:${http.port}`
      : `${http.host}:${http.port}`
    const code = (e as { code?: unknown }).code
    const reason = describeError(e)
    throw new AppError(
      'internal',
      `cannot listen on ${address} (HOST, PORT): ${typeof code === 'string' && !reason.includes(code) ? `${code}: ` : ''}${reason}`,
      { host: http.host, port: http.port },
      { cause: e },
    )
  }
}

/** Starts each database's listener into `listeners` (filled as it goes, so a failed start can stop them). */
function startListeners(
  config: Config,
  handles: readonly DbHandle[],
  listeners: Map<string, Listener>,
  drainers: ReadonlyMap<string, Drainer>,
  onEvent: EngineEventHandler,
  log: Logger,
): void {
  for (const [i, h] of handles.entries()) {
    const listener = createListener({
      db: h.name,
      url: config.databases[i]!.listenUrl,
      log,
      clock: systemClock,
      wake: () => drainers.get(h.name)?.wake(),
      onEvent,
      checkIntervalMs: config.worker.listenCheckSeconds * 1000,
      mode: config.worker.listenMode,
      shared: h.listenSession,
    })
    listeners.set(h.name, listener)
    listener.start()
  }
}

/** Starts each database's drainer into `drainers`; one worker identity and one set of send slots for all. */
function startDrainers(
  config: Config,
  handles: readonly DbHandle[],
  transport: Transport,
  listeners: ReadonlyMap<string, Listener>,
  drainers: Map<string, Drainer>,
  onEvent: EngineEventHandler,
  log: Logger,
): void {
  transport.warmUp()
  const slots = createSlots(config.worker.concurrency)
  const worker = {
    id: `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`,
    host: hostname(),
    pid: process.pid,
    version: VERSION,
  }
  for (const h of handles) {
    const listener = listeners.get(h.name)
    const drainer = createDrainer({
      dbName: h.name,
      db: h.statements.db,
      sender: transport.sender,
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
      sendBlockedForMs: transport.blockedForMs,
      onEvent,
    })
    drainers.set(h.name, drainer)
    drainer.start()
  }
  log.info('workers started', {
    databases: handles.map((h) => h.name),
    transport: transport.sender.name,
    concurrency: config.worker.concurrency,
    workerId: worker.id,
  })
}

/**
 * Checks every database's schema at once; returns the names found current. A verdict (missing,
 * outdated) ends the start; an unreachable database does not: the loops retry, readiness reports it.
 */
async function checkSchemas(handles: readonly DbHandle[], log: Logger): Promise<string[]> {
  const outcomes = await Promise.allSettled(handles.map((h) => assertSchemaCurrent(h.pool, h.name)))
  const current: string[] = []
  for (const [i, r] of outcomes.entries()) {
    const db = handles[i]!.name
    if (r.status === 'fulfilled') {
      current.push(db)
      if (r.value.newer.length > 0) {
        log.warn('database has migrations from a newer release; they keep this one working', {
          db,
          newer: r.value.newer,
        })
      }
    } else if (isAppError(r.reason)) {
      throw r.reason
    } else {
      log.warn('database unreachable at start; will keep trying', { db, err: r.reason })
    }
  }
  return current
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
