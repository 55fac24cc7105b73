// The app `serve` listens with: health, readiness and metrics from the start; the API's routes and document loaded at the first request for them.
import { systemClock } from '../clock.ts'
import { AppError } from '../errors.ts'
import { createVerifier } from './auth.ts'
import type { ApiDeps } from './context.ts'
import { createOperationsApp } from './operations-app.ts'
import { PROBLEM_CONTENT_TYPE, problemOf } from './problem.ts'

type Fetch = (req: Request) => Response | Promise<Response>

/**
 * Building the API's routes (their zod schemas, the routers, the OpenAPI registrations) was about a
 * third of a start's CPU, and nothing a platform asks before routing traffic needs it: a process is
 * ready, and probed, long before its first API request, which pays for it once (~15 ms). Whatever
 * would refuse the start refuses it still: no database, the API's auth (createVerifier), here.
 */
export function createServedApp(deps: ApiDeps): { fetch: Fetch } {
  const operations = createOperationsApp(deps)
  if (deps.surface === 'operations') return operations
  const verify = createVerifier(deps.auth, deps.dev, deps.log, deps.clock ?? systemClock)
  const alone = new Set(['/healthz', '/readyz', ...(deps.metricsApart ? [] : ['/metrics'])])
  let api: Promise<{ fetch: Fetch }> | null = null
  const loaded = () =>
    (api ??= import('./app.ts').then(
      (m) => m.createApp(deps, verify),
      (err: unknown) => {
        // A binary whose own chunk cannot load is broken; the next request tries again.
        api = null
        throw err
      },
    ))
  return {
    fetch(req) {
      // Exactly the operations app's routes, as the API's app routes them too (same handlers,
      // same answers); anything else, a 404 or 405 included, is the API's app's to answer.
      if ((req.method === 'GET' || req.method === 'HEAD') && alone.has(pathOf(req.url))) {
        return operations.fetch(req)
      }
      return loaded().then(
        (app) => app.fetch(req),
        (err: unknown) => {
          deps.log.error('the API could not be loaded', { err })
          const problem = problemOf(new AppError('internal', 'the API could not be loaded'))
          return Response.json(problem, {
            status: problem.status,
            headers: { 'content-type': PROBLEM_CONTENT_TYPE },
          })
        },
      )
    },
  }
}

/** The path of a request URL as it came, before any query: `alone` holds only plain paths. */
function pathOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('://') + 3)
  if (start < 0) return '/'
  const query = url.indexOf('?', start)
  return query < 0 ? url.slice(start) : url.slice(start, query)
}
