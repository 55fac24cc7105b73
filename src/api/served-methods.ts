// The methods an app serves at a path, asked of the app's own router: the Allow header of a 405.
import type { Hono } from 'hono'

// Allow lists them in this order; HEAD is served wherever GET is (Hono answers it with the GET).
const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

// What Hono's router holds per handler: the handler and the route it belongs to (hono-base.ts).
type RouterEntry = [unknown, { method: string }]

/**
 * What `app` serves at a path, in Allow's order; empty for a path no route serves. The router that
 * dispatches requests answers, so Allow matches whatever patterns the routes use (a constrained or
 * optional parameter, a wildcard). Middleware (method ALL) serves nothing. Every route matching the
 * path counts: /v1/outbox/cancel is also /v1/outbox/{id} of the id "cancel", which GET serves. The
 * router is asked when a request comes, so routes mounted after this is made count.
 */
export function servedMethods(app: Pick<Hono, 'router'>): (path: string) => string[] {
  const serves = (method: string, path: string) =>
    (app.router.match(method, path)[0] as [RouterEntry, unknown][]).some(
      ([[, route]]) => route.method === method,
    )
  return (path) => {
    const served = new Set<string>(ORDER.filter((m) => m !== 'HEAD' && serves(m, path)))
    if (served.has('GET')) served.add('HEAD')
    return ORDER.filter((m) => served.has(m))
  }
}
