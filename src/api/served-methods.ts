// The methods an app serves at a path, read from its routes: the Allow header of a 405.

interface Route {
  method: string
  path: string
}

// Allow lists them in this order; HEAD is served wherever GET is (Hono answers it with the GET).
const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

// '/v1/outbox/:id' matches one non-empty segment per parameter, as Hono's router does.
const patternOf = (path: string) =>
  new RegExp(
    `^${path
      .split('/')
      .map((s) => (s.startsWith(':') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`,
  )

/**
 * What `routes` serve at a path, in Allow's order; empty for a path no route serves. Middleware
 * (method ALL) serves nothing. Every route matching the path counts: /v1/outbox/cancel is also
 * /v1/outbox/{id} of the id "cancel", which GET serves. Reads `routes` when called, so routes
 * mounted after this is made count.
 */
export function servedMethods(routes: readonly Route[]): (path: string) => string[] {
  let compiled: { method: string; re: RegExp }[] = []
  let seen = -1
  return (path) => {
    if (seen !== routes.length) {
      compiled = routes
        .filter((r) => r.method !== 'ALL' && !r.path.includes('*'))
        .map((r) => ({ method: r.method, re: patternOf(r.path) }))
      seen = routes.length
    }
    const served = new Set(compiled.filter((r) => r.re.test(path)).map((r) => r.method))
    if (served.has('GET')) served.add('HEAD')
    return ORDER.filter((m) => served.has(m))
  }
}
