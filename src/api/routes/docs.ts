// /openapi.json (OpenAPI 3.1, generated from the route schemas) and /docs (Scalar API reference).
import { createHash } from 'node:crypto'
import type { OpenAPIHono } from '@hono/zod-openapi'
import { Scalar } from '@scalar/hono-api-reference'
import type { Context } from 'hono'
import { CLOCK_TOLERANCE_SECONDS } from '../auth.ts'
import { BEARER_SCHEME } from '../bearer-security.ts'
import type { ApiDeps, AppEnv } from '../context.ts'
import { withHeadOperations } from '../head-operations.ts'
import { Problem } from '../problem.ts'
import { withRequestIdHeader } from '../request-id-header.ts'

const OPENAPI_PATH = '/openapi.json'

// The reference's single-file bundle, pinned: unpinned, the page ran whatever jsdelivr served that
// day. The integrity is the sha384 of dist/browser/standalone.js in the published npm tarball of this
// version (jsdelivr serves a file named by its path as published); change both together.
const SCALAR_VERSION = '1.76.0'
const SCALAR_SCRIPT = `https://cdn.jsdelivr.net/npm/@scalar/api-reference@${SCALAR_VERSION}/dist/browser/standalone.js`
const SCALAR_INTEGRITY = 'sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ'

const scalar = Scalar({ url: OPENAPI_PATH, pageTitle: 'outbox-mailer API', cdn: SCALAR_SCRIPT })

/**
 * The docs page: Scalar's HTML with Subresource Integrity on its script, which Scalar cannot write,
 * and a policy that runs only that script and the page's own start script (by its hash). Built once:
 * the page is the same for every request.
 */
async function renderDocsPage(c: Context<AppEnv>) {
  // Scalar's handler answers itself (never calls next) and reads nothing of the request.
  const answered = await scalar(c as unknown as Context, async () => {})
  const html = await (answered as Response).text()
  const tag = `<script src="${SCALAR_SCRIPT}">`
  const inline = [...html.matchAll(/<script(?: type="text\/javascript")?>([\s\S]*?)<\/script>/g)]
  // A Scalar release that writes its tags otherwise must fail here, not serve a page without them.
  if (!html.includes(tag) || inline.length !== 1) {
    throw new Error('the Scalar page no longer has the script tags /docs pins')
  }
  const hash = createHash('sha256').update(inline[0]![1]!).digest('base64')
  return {
    html: html.replace(
      tag,
      `<script src="${SCALAR_SCRIPT}" integrity="${SCALAR_INTEGRITY}" crossorigin="anonymous">`,
    ),
    policy: `script-src 'sha256-${hash}' ${SCALAR_SCRIPT}; object-src 'none'; base-uri 'none'`,
  }
}

/** Registers on the root app, after every route, so the document sees them all. */
export function mountDocs(app: OpenAPIHono<AppEnv>, deps: ApiDeps) {
  // Every problem response refers to it (problemResponse); registered here, not by the first use.
  app.openAPIRegistry.register('Problem', Problem)
  app.openAPIRegistry.registerComponent('securitySchemes', BEARER_SCHEME, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: `Scopes outbox:read, outbox:write in the space-separated \`scope\` claim, or as Microsoft Entra ID issues them in \`scp\` (space-separated) or \`roles\` (an array). \`exp\` is required; \`exp\` and \`nbf\` are judged with ${CLOCK_TOLERANCE_SECONDS} s of clock skew allowed; an optional \`tenant\` claim confines the caller to one tenant (Entra's \`tid\` does not), an optional \`db\` claim to one database, and an optional \`senders\` claim (a non-empty array of addresses) the message.from its enqueues may name and the rows it may retry (by their sender; bulk retry leaves the others and counts them in outsideSenders). A refused token's 401 says in its detail which check failed.`,
  })
  const config: Parameters<typeof app.getOpenAPI31Document>[0] = {
    openapi: '3.1.0',
    info: {
      title: 'outbox-mailer',
      version: deps.version,
      description:
        'Inspect and steer the e-mail outbox (mailer.email_outbox). Errors are application/problem+json. With several databases, /v1 routes take ?db=NAME. Besides the operations below: a path no route serves is a 404 not_found (one served without the trailing slash it was asked with names that path); a method a path does not serve is a 405 method_not_allowed whose Allow header lists the methods it does (under /v1, after the token is checked); this document is served at /openapi.json and the interactive docs at /docs, both without a token.',
    },
    tags: [
      { name: 'outbox', description: 'Rows, enqueue, cancel, retry, stats' },
      // With METRICS_PORT, /metrics is not on this port: the document says only what this port serves.
      {
        name: 'operations',
        description: deps.metricsApart
          ? 'Health, readiness (no token)'
          : 'Health, readiness, metrics (no token)',
      },
    ],
  }
  // Generated when asked, as doc31 does; completed with what every route serves besides its schemas.
  app.get(OPENAPI_PATH, (c) =>
    c.json(withRequestIdHeader(withHeadOperations(app.getOpenAPI31Document(config)))),
  )
  let page: ReturnType<typeof renderDocsPage> | null = null
  app.get('/docs', async (c) => {
    page ??= renderDocsPage(c)
    const { html, policy } = await page
    return c.html(html, 200, { 'content-security-policy': policy })
  })
}
