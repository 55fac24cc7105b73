// Request id (X-Request-Id echoed or generated), a request-scoped logger, and one access-log line.
import { createMiddleware } from 'hono/factory'
import type { Logger } from '../log.ts'
import type { AppEnv } from './context.ts'
import { ACCEPTABLE_ID, REQUEST_ID_HEADER } from './request-id-header.ts'

// Probes and scrapes arrive every few seconds; they are logged at debug unless they fail.
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics'])

export function requestContext(log: Logger) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const incoming = c.req.header('x-request-id')
    const requestId = incoming && ACCEPTABLE_ID.test(incoming) ? incoming : crypto.randomUUID()
    const reqLog = log.child({ requestId })
    c.set('requestId', requestId)
    c.set('log', reqLog)
    c.header(REQUEST_ID_HEADER, requestId)
    const started = performance.now()
    await next()
    if (!c.res.headers.has('x-request-id')) c.header(REQUEST_ID_HEADER, requestId)
    const status = c.res.status
    const fields = {
      method: c.req.method,
      route: c.req.routePath,
      status,
      ms: Math.round(performance.now() - started),
    }
    if (QUIET_PATHS.has(c.req.path) && status < 500) reqLog.debug('request', fields)
    else reqLog.info('request', fields)
  })
}
