// /healthz (liveness) and /readyz (readiness, per database): no token, no secrets, no row data.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import { type DatabaseHealth, sessionHolds } from '../../outbox/health.ts'
import type { ApiDeps, AppEnv } from '../context.ts'
import { jsonResponse } from '../json-response.ts'
import { validationHook } from '../validation-hook.ts'

const Liveness = z
  .object({ status: z.enum(['ok', 'failing']), problems: z.array(z.string()) })
  .openapi('Liveness')

const DatabaseReadiness = z
  .object({
    name: z.string(),
    ready: z.boolean(),
    reachable: z.boolean(),
    migrated: z.boolean().openapi({
      description:
        "The schema is what this binary expects; false too when it could not be read (the database unreachable, or refusing this service's connection): problem says why",
    }),
    worker: z.enum(['running', 'starting', 'stopped', 'disabled']),
    listener: z.enum(['connecting', 'listening', 'reconnecting', 'polling', 'stopped', 'disabled']),
    lastLoopAt: z.iso.datetime().nullable(),
    problem: z.string().nullable(),
    warning: z.string().nullable().openapi({
      description:
        'Something to act on that does not make the database unready, e.g. a credential Entra refuses (under --role all for as long as it lasts: the process still accepts and stores mail; under --role worker while a cached token still serves sends), MAIL_FROM refused by Graph, Graph out of reach, a database whose encoding is not UTF8',
    }),
  })
  .openapi('DatabaseReadiness')

const Readiness = z
  .object({ status: z.enum(['ready', 'unavailable']), databases: z.array(DatabaseReadiness) })
  .openapi('Readiness')

/**
 * Ready: reachable, migrated, its worker running (or disabled under --role api), and its listener
 * listening or in declared poll-only mode. A reconnecting listener is not ready: the backstop poll
 * still works, but the instance should not look healthy while its wake-ups are lost. Any reported
 * problem also makes it not ready. A warning does not: Graph refusing our credential is one under
 * --role all (it accepts and stores mail all the same; a 503 would take its API out of routing),
 * and under --role worker while a cached token still serves sends (then a problem: it cannot send).
 */
export function isReady(h: DatabaseHealth): boolean {
  return (
    h.problem === null &&
    h.reachable &&
    h.migrated &&
    (h.worker === 'running' || h.worker === 'disabled') &&
    sessionHolds(h.listener)
  )
}

export function healthRoutes(deps: ApiDeps) {
  const healthz = createRoute({
    method: 'get',
    path: '/healthz',
    operationId: 'liveness',
    tags: ['operations'],
    summary: 'Liveness: the process and its loops are alive',
    responses: {
      200: jsonResponse(Liveness, 'Alive'),
      503: jsonResponse(Liveness, 'A loop is wedged: restart the machine'),
    },
  })
  const readyz = createRoute({
    method: 'get',
    path: '/readyz',
    operationId: 'readiness',
    tags: ['operations'],
    summary: 'Readiness: every database reachable, migrated, worker and listener running',
    responses: {
      200: jsonResponse(Readiness, 'Ready'),
      503: jsonResponse(Readiness, 'Not ready: each database says what is wrong'),
    },
  })

  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
    .openapi(healthz, (c) => {
      const l = deps.health.liveness()
      const body = { status: l.ok ? ('ok' as const) : ('failing' as const), problems: l.problems }
      return l.ok ? c.json(body, 200) : c.json(body, 503)
    })
    .openapi(readyz, async (c) => {
      let states: DatabaseHealth[]
      try {
        states = await deps.health.readiness()
      } catch (e) {
        c.get('log').warn('readiness probe failed', { err: e })
        states = deps.databases.map((d) => unknownState(d.name))
      }
      const databases = states.map((h) => ({
        name: h.name,
        ready: isReady(h),
        reachable: h.reachable,
        migrated: h.migrated,
        worker: h.worker,
        listener: h.listener,
        lastLoopAt: h.lastLoopAt === null ? null : new Date(h.lastLoopAt).toISOString(),
        problem: h.problem,
        warning: h.warning,
      }))
      const ready = databases.length > 0 && databases.every((d) => d.ready)
      const body = { status: ready ? ('ready' as const) : ('unavailable' as const), databases }
      return ready ? c.json(body, 200) : c.json(body, 503)
    })
}

const unknownState = (name: string): DatabaseHealth => ({
  name,
  reachable: false,
  migrated: false,
  worker: 'stopped',
  listener: 'stopped',
  lastLoopAt: null,
  problem: 'the readiness probe failed',
  warning: null,
})
