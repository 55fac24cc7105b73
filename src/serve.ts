// Composition of `serve`: every database's engine and listener, the HTTP surface, a guarded start, a stop.
import { createMetrics, type Metrics, QUIET_LIVE_REUSE_MS } from './api/metrics.ts'
import { createMetricsApp } from './api/operations-app.ts'
import { createServedApp } from './api/served-app.ts'
import type { Config } from './config.ts'
import { processWorker, startDrainers, startListeners } from './database-engines.ts'
import type { DbHandle } from './db/open.ts'
import { warnSameServerDatabases } from './db/server-database.ts'
import { AppError } from './errors.ts'
import { listen, listenRefusal } from './http-listen.ts'
import type { Drainer } from './outbox/drainer.ts'
import type { EngineEventHandler } from './outbox/events.ts'
import type { HealthSource } from './outbox/health.ts'
import { createHealthMonitor } from './outbox/health-monitor.ts'
import type { Listener } from './outbox/listener.ts'
import { startLivenessWatchdog } from './outbox/liveness-watchdog.ts'
import { mailFromUnknownHere } from './outbox/row-rendering.ts'
import { checkSchemas } from './schema-check-at-start.ts'
import { openServedDatabases } from './serve-databases.ts'
import type { Running, ServeOptions } from './serve-options.ts'
import { warnOfConfigAtStart } from './serve-start-warnings.ts'
import { stopServing, unrecordedSendsOf } from './serve-stop.ts'
import { createTransport, immediateTransport } from './transport-wiring.ts'
import { VERSION } from './version.ts'

/** Starts the engine for every database and the HTTP surface; returns a handle to stop it. */
export async function serve(config: Config, o: ServeOptions): Promise<Running> {
  const log = o.log
  if (o.role !== 'worker' && !o.dev && !config.api.jwtSecret && !config.api.jwksUrl) {
    throw new AppError(
      'config_invalid',
      'the API needs auth: set API_JWT_SECRET or API_JWKS_URL (or run `serve --role worker` for health and metrics only)',
    )
  }
  warnOfConfigAtStart(config, o.role, log)
  const handles: DbHandle[] = openServedDatabases(config, o.role, log)
  const drainers = new Map<string, Drainer>()
  const listeners = new Map<string, Listener>()
  const worker = processWorker()
  let transportProblem: () => string | null = () => null
  let transportWarning: () => string | null = () => null
  let senderMailboxRefused: (() => boolean) | undefined
  let credential: { kind: 'certificate' | 'secret'; refused(): boolean } | undefined
  let providerOutage: (() => string | null) | undefined
  let certificate: { thumbprint: string; notAfter: number } | undefined
  // The transport's timer keeping its token fresh (a worker's only): ended at stop.
  let stopKeepingFresh = () => {}
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
    if (o.role !== 'api') startListeners(config, worker, handles, listeners, drainers, onEvent, log)
    const { current: schemaCurrent, takingWrites, notUtf8 } = await checkSchemas(handles, log)
    // The URL texts were compared with the configuration; two may still reach one database.
    if (handles.length > 1) warnSameServerDatabases(handles, log)
    if (o.role !== 'api') {
      const transport = o.sender
        ? immediateTransport(o.sender)
        : createTransport(config, log, (outcome, code) => metrics?.incTokenRefresh(outcome, code))
      transportProblem = transport.problem
      transportWarning = transport.warning
      senderMailboxRefused = transport.senderMailboxRefused
      credential = transport.credential
      providerOutage = transport.providerOutage
      certificate = transport.certificate
      startDrainers(config, worker, handles, transport, listeners, drainers, onEvent, log)
      stopKeepingFresh = transport.keepFresh?.() ?? stopKeepingFresh
    }
    // Nothing from here to serve's return awaits: a stop asked during the start begins in this
    // turn (run-until-signalled.ts), before a drainer's first statement answers.
    const health = createHealthMonitor({
      databases: handles.map((h) => ({
        name: h.name,
        statements: h.statements,
        answeredAt: () => h.statements.answeredAt(),
        writes: h.writes,
        drainer: drainers.get(h.name) ?? null,
        listener: listeners.get(h.name) ?? null,
      })),
      schemaCurrent,
      takingWrites,
      notUtf8,
      wedgedAfterMs: Math.max(3 * config.worker.pollIntervalSeconds * 1000, 120_000),
      transportProblem: () => transportProblem(),
      transportWarning: () => transportWarning(),
      // --role all also takes mail: a credential refused must not take its API out of routing.
      transportProblemMakes: o.role === 'worker' ? 'unready' : 'warning',
    })
    metrics = createMetrics({
      databases: handles,
      health,
      listenMode: config.worker.listenMode,
      drains: o.role !== 'api',
      ...(senderMailboxRefused ? { senderMailboxRefused } : {}),
      ...(credential ? { credential } : {}),
      ...(providerOutage ? { providerOutage } : {}),
      ...(certificate ? { certificate } : {}),
      // onEvent above feeds it every listener's and drainer's events.
      quietReuseMs: QUIET_LIVE_REUSE_MS,
    })
    const deps = {
      databases: handles,
      auth: config.api,
      allowedSenders: config.allowedSenders,
      mailFrom: config.mailFrom,
      // Its own start asks nothing of MAIL_FROM: what it says of the workers' is not known here.
      mailFromUnknown:
        o.role === 'api' ? mailFromUnknownHere(config.mailFrom, config.transport) : null,
      dev: o.dev === true,
      health,
      metrics,
      log,
      version: VERSION,
      // A worker-only process serves what the platform needs: health, readiness, metrics.
      surface: o.role === 'worker' ? ('operations' as const) : ('all' as const),
      metricsApart: config.http.metricsPort !== null,
    }
    const app = createServedApp(deps)
    let metricsServer: ReturnType<typeof Bun.serve> | null = null
    if (config.http.metricsPort !== null) {
      metricsServer = listen(
        { ...config.http, port: config.http.metricsPort },
        createMetricsApp(deps).fetch,
        'METRICS_PORT',
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
    // A held port is said as a log line too, with its fields: a platform's log search finds it there.
    const refused = listenRefusal(e)
    if (refused) log.error((e as Error).message, { ...refused })
    stopKeepingFresh()
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
  o.onListening?.({ port: server.port ?? config.http.port, metricsPort })

  const stopWatchdog = startLivenessWatchdog(health, log)

  let stopped: Promise<void> | null = null
  const unrecordedSends = () => unrecordedSendsOf(drainers)
  return {
    port: server.port ?? null,
    drainers,
    listeners,
    unrecordedSends,
    stop(reason) {
      stopKeepingFresh()
      stopped ??= stopServing({
        log,
        graceSeconds: config.worker.shutdownGraceSeconds,
        drainers,
        listeners,
        servers,
        handles,
        stopWatchdog,
        reason,
        graph: config.graph,
      })
      return stopped
    },
  }
}
