// Builds the app over real test databases with a fake health source, and sends requests to it.
import type { Kysely } from 'kysely'
import type pg from 'pg'
import { type ApiDeps, createApp } from '../../../src/api/app.ts'
import { createMetrics } from '../../../src/api/metrics.ts'
import type { Database } from '../../../src/db/schema.ts'
import { silentLogger } from '../../../src/log.ts'
import type { HealthSource } from '../../../src/outbox/health.ts'
import { type CompiledDocument, compileDocument, type Doc } from './compiled-document.ts'
import { type Contract, createContract } from './contract.ts'
import { fakeHealth } from './fake-health.ts'
import { AUDIENCE, ISSUER, SECRET } from './tokens.ts'

export interface Db {
  name: string
  db: Kysely<Database>
  pool: pg.Pool
}

export function buildApp(databases: Db[], over: Partial<ApiDeps> = {}) {
  const health: HealthSource = over.health ?? fakeHealth(databases.map((d) => d.name))
  const metrics =
    over.metrics ??
    createMetrics({
      databases: databases.map((d) => ({ ...d, statements: { db: d.db } })),
      health,
    })
  const deps: ApiDeps = {
    databases: databases.map((d) => ({ name: d.name, db: d.db, pool: d.pool })),
    auth: { jwtSecret: SECRET, jwksUrl: null, issuer: ISSUER, audience: AUDIENCE },
    dev: false,
    health,
    metrics,
    log: silentLogger,
    version: '0.0.0-test',
    rateLimitPerMinute: 0,
    ...over,
  }
  return { app: createApp(deps), deps }
}

/** The app over one database, named default (as most tests' requests name none). */
export const appOnDefault = (d: Omit<Db, 'name'>, over: Partial<ApiDeps> = {}) =>
  buildApp([{ name: 'default', db: d.db, pool: d.pool }], over)

export type App = ReturnType<typeof buildApp>['app']

export interface Sent {
  status: number
  headers: Headers
  body: unknown
  res: Response
}

// Each app's own document, read once: every answer `send` gets is checked against it.
const contracts = new WeakMap<App, Promise<Contract | null>>()
// Compiling a document's schemas costs seconds of a loaded machine's 30 s test bound: apps serving
// the same document (the same text) share one compilation; each keeps its own record of what it sent.
const compilations = new Map<string, CompiledDocument>()

/** The contract of the document this app serves; null for an app that serves none (operations only). */
export function contractOf(app: App): Promise<Contract | null> {
  let c = contracts.get(app)
  if (!c) {
    c = (async () => {
      const res = await app.request('/openapi.json')
      if (res.status !== 200) return null
      const text = await res.text()
      let compiled = compilations.get(text)
      if (!compiled) {
        compiled = compileDocument(JSON.parse(text) as Doc)
        compilations.set(text, compiled)
      }
      return createContract(compiled.doc, compiled)
    })()
    contracts.set(app, c)
  }
  return c
}

/**
 * One request; the body is parsed as JSON when the response says it is JSON. The answer must be one
 * the app's document allows (contract.ts): a test of any route checks conformance on the way.
 */
export async function send(
  app: App,
  method: string,
  path: string,
  o: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Sent> {
  const headers: Record<string, string> = { ...o.headers }
  if (o.token) headers.authorization = `Bearer ${o.token}`
  let body: string | undefined
  if (o.body !== undefined) {
    headers['content-type'] ??= 'application/json'
    body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body)
  }
  const res = await app.request(path, { method, headers, body })
  const type = res.headers.get('content-type') ?? ''
  const text = await res.text()
  const parsed = type.includes('json') && text ? JSON.parse(text) : text
  const sent: Sent = { status: res.status, headers: res.headers, body: parsed, res }
  const contract = await contractOf(app)
  contract?.check(method, path, sent)
  contract?.checkRequest(
    method,
    path,
    typeof o.body === 'string' ? parsedOrNot(o.body) : o.body,
    sent,
  )
  return sent
}

/** Inserts a row through the SQL API and returns its id. */
export async function enqueueSql(
  pool: pg.Pool,
  options: Record<string, unknown> = {},
  message: Record<string, unknown> = { to: 'ada@example.com', subject: 'Hi', text: 'Hello' },
): Promise<string> {
  const r = await pool.query('select mailer.enqueue_email($1::jsonb, $2::jsonb)::text as id', [
    JSON.stringify(message),
    JSON.stringify(options),
  ])
  return r.rows[0].id
}

/** Puts a row in a state directly, as the engine would have. */
export async function setState(
  pool: pg.Pool,
  id: string,
  state: 'sending' | 'sent' | 'failed' | 'cancelled',
  o: { sendStarted?: boolean } = {},
) {
  if (state === 'sending') {
    await pool.query(
      `update mailer.email_outbox set status = 'sending', lease_owner = 'w1', lease_token = gen_random_uuid(),
         lease_expires_at = now() + interval '1 minute', attempts = attempts + 1,
         send_started_at = case when $2 then now() end where id = $1`,
      [id, o.sendStarted === true],
    )
  } else {
    await pool.query(
      `update mailer.email_outbox set status = $2, attempts = 3,
         sent_at = case when $2 = 'sent' then now() end,
         last_error_code = case when $2 = 'failed' then 'ErrorInvalidRecipients' end,
         last_error = case when $2 = 'failed' then 'recipient rejected' end where id = $1`,
      [id, state],
    )
  }
}

const parsedOrNot = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
