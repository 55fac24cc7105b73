// createApp(deps): the HTTP surface as a Hono app; serve loads it at the API's first request (served-app.ts), tests call app.request.
import type { OpenAPIHono } from '@hono/zod-openapi'
import { systemClock } from '../clock.ts'
import { authenticate, createVerifier, type Verify } from './auth.ts'
import { routeBodyLimit } from './body-limits.ts'
import type { ApiDeps, AppEnv } from './context.ts'
import { admitLargeBodies, largeBodySlots } from './large-body-slots.ts'
import { refuseNamelessQuery } from './nameless-query.ts'
import { createOperationsApp } from './operations-app.ts'
import { wellFormedQuery } from './percent-encoding.ts'
import { rateLimit } from './rate-limit.ts'
import { mountDocs } from './routes/docs.ts'
import { enqueueRoutes } from './routes/enqueue.ts'
import { outboxRoutes } from './routes/outbox.ts'
import { outboxActionRoutes } from './routes/outbox-actions.ts'
import { statsRoutes } from './routes/stats.ts'

export type { ApiDatabase, ApiDeps } from './context.ts'

const DEFAULT_RATE_PER_MINUTE = 600

/**
 * Throws AppError('config_invalid') when no auth is configured and `dev` is false (unless only the
 * operations surface is served). `verify`: the verifier made already (served-app.ts makes it at
 * start, this app at the API's first request).
 */
export function createApp(deps: ApiDeps, verify?: Verify | null): OpenAPIHono<AppEnv> {
  const app = createOperationsApp(deps)
  if (deps.surface === 'operations') return app

  const clock = deps.clock ?? systemClock
  const verified =
    verify !== undefined ? verify : createVerifier(deps.auth, deps.dev, deps.log, clock)
  app.use(
    '/v1/*',
    routeBodyLimit,
    authenticate(verified),
    // The injected clock, as the tokens' exp and nbf are judged: a bucket's refill is testable.
    rateLimit(deps.rateLimitPerMinute ?? DEFAULT_RATE_PER_MINUTE, () => clock.now()),
    // After the token and the rate: a refused request's body is never read, so takes no slot.
    admitLargeBodies(deps.largeBodySlots ?? largeBodySlots()),
    wellFormedQuery,
    refuseNamelessQuery,
  )

  app.route('/', outboxActionRoutes(deps))
  app.route('/', outboxRoutes(deps))
  app.route('/', enqueueRoutes(deps))
  app.route('/', statsRoutes(deps))
  mountDocs(app, deps)
  return app
}
