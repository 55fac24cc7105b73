// The HTTP API over a real socket, served by the compiled binary: documented, authenticated, working.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Validator } from '@seriousme/openapi-schema-validator'
import { createContract, type Doc } from '../api/support/contract.ts'
import { appOnDefault, type Sent } from '../api/support/harness.ts'
import { AUDIENCE, ISSUER, SECRET, token } from '../api/support/tokens.ts'
import { compiledBinary } from '../support/binary.ts'
import { createTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Builds and drives the real binary: slower than a unit test, still bounded.
setDefaultTimeout(90_000)

let database: TemplateDb
let proc: ReturnType<typeof Bun.spawn>
let base: string
let mailDir: string
let bin: string

beforeAll(async () => {
  bin = await compiledBinary()
  database = await cloneTemplateDb('outbox_api')
  mailDir = await mkdtemp(join(tmpdir(), 'outbox-api-mail-'))
  // PORT=0: the binary binds a port of the system's choosing and says which.
  const child = Bun.spawn([bin, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: database.url,
      MAIL_TRANSPORT: 'file',
      MAIL_FILE_DIR: mailDir,
      MAIL_FROM: 'outbox@example.com',
      API_JWT_SECRET: SECRET,
      API_JWT_ISSUER: ISSUER,
      API_JWT_AUDIENCE: AUDIENCE,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
    },
    stdout: 'pipe',
    stderr: 'ignore',
  })
  proc = child
  const port = await listeningPort(growingOutput(child.stdout), child.exited)
  base = `http://127.0.0.1:${port}`
  await pollUntil(async () =>
    (await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined,
  )
})

afterAll(async () => {
  proc?.kill('SIGTERM')
  await proc?.exited
  await database?.drop()
  await rm(mailDir, { recursive: true, force: true })
})

test('the served /openapi.json is a valid OpenAPI 3.1 document', async () => {
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string }
  const result = await new Validator().validate(doc)
  expect(result.errors ?? []).toEqual([])
  expect(result.valid).toBe(true)
  expect(doc.openapi).toMatch(/^3\.1/)
  expect((await fetch(`${base}/docs`)).status).toBe(200)
})

test('enqueue over HTTP with a bearer token: the mail is written and the row reads back sent', async () => {
  const auth = { authorization: `Bearer ${await token()}`, 'content-type': 'application/json' }
  const res = await fetch(`${base}/v1/outbox`, {
    method: 'POST',
    headers: { ...auth, 'idempotency-key': 'socket-1' },
    body: JSON.stringify({
      message: { to: 'a@example.com', subject: 'Over a socket', text: 'hi' },
    }),
  })
  expect(res.status).toBe(201)
  const { id } = (await res.json()) as { id: string }
  await pollUntil(async () =>
    (await readdir(mailDir)).includes(`outbox-${id}.eml`) ? true : undefined,
  )
  const row = await pollUntil(async () => {
    const r = await fetch(`${base}/v1/outbox/${id}`, { headers: auth })
    const body = (await r.json()) as { status: string; history: unknown[] }
    return body.status === 'sent' ? body : undefined
  })
  expect(row.history.length).toBe(1)
  const again = await fetch(`${base}/v1/outbox`, {
    method: 'POST',
    headers: { ...auth, 'idempotency-key': 'socket-1' },
    body: JSON.stringify({
      message: { to: 'a@example.com', subject: 'Over a socket', text: 'hi' },
    }),
  })
  expect(again.status).toBe(200)
  expect(((await again.json()) as { id: string }).id).toBe(id)
})

test('without a token the API answers a 401 problem; health needs none', async () => {
  const res = await fetch(`${base}/v1/outbox`)
  expect(res.status).toBe(401)
  expect(res.headers.get('content-type')).toContain('application/problem+json')
  expect((await fetch(`${base}/healthz`)).status).toBe(200)
  const metrics = await (await fetch(`${base}/metrics`)).text()
  expect(metrics).toContain('outbox_listener_connected{db="default"} 1')
})

test('over the socket the binary answers as its document declares, and serves the document the app builds', async () => {
  const served = (await (await fetch(`${base}/openapi.json`)).json()) as Doc
  const contract = createContract(served)
  const auth = { authorization: `Bearer ${await token()}` }
  const cases: [string, string, RequestInit?][] = [
    ['GET', '/healthz'],
    ['HEAD', '/healthz'],
    ['GET', '/readyz'],
    ['GET', '/metrics'],
    ['HEAD', '/metrics'],
    ['GET', '/v1/outbox'],
    ['GET', '/v1/outbox?limit=1', { headers: auth }],
    ['HEAD', '/v1/outbox?limit=1', { headers: auth }],
    ['GET', '/v1/outbox/999999', { headers: auth }],
    ['GET', '/v1/outbox?limt=1', { headers: auth }],
    ['POST', '/v1/outbox', { headers: { ...auth, 'content-type': 'application/json' }, body: '{' }],
    ['POST', '/v1/outbox', { headers: { ...auth, 'content-type': 'text/plain' }, body: '{}' }],
    ['PUT', '/v1/outbox', { headers: auth }],
    ['GET', '/v1/stats', { headers: auth }],
  ]
  for (const [method, url, init] of cases) {
    const res = await fetch(`${base}${url}`, { method, ...init })
    const text = await res.text()
    const json = (res.headers.get('content-type') ?? '').includes('json') && text
    const r: Sent = {
      status: res.status,
      headers: res.headers,
      body: json ? JSON.parse(text) : text,
      res,
    }
    contract.check(method, url, r)
  }
  // The same document as the app under test builds (bar the version): what the API tests check
  // is what the binary serves.
  const t = await createTestDb()
  try {
    const app = appOnDefault(t).app
    const built = (await (await app.request('/openapi.json')).json()) as Doc & { info: object }
    expect({ ...served, info: null }).toEqual({ ...built, info: null })
  } finally {
    await t.drop()
  }
})

test('send-test sends one message through the configured transport', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-send-test-'))
  try {
    const p = Bun.spawn([bin, 'send-test', '--to', 'me@example.com'], {
      env: {
        PATH: process.env.PATH ?? '',
        MAIL_TRANSPORT: 'file',
        MAIL_FILE_DIR: dir,
        MAIL_FROM: 'outbox@example.com',
      },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    expect(await p.exited).toBe(0)
    expect(await new Response(p.stdout).text()).toContain('sent')
    const files = await readdir(dir)
    expect(files.length).toBe(1)
    expect(files[0]).toMatch(/^outbox-send-test-\d+-[0-9a-f]{8}\.eml$/)
    const bad = Bun.spawn([bin, 'send-test'], {
      env: { PATH: process.env.PATH ?? '', MAIL_TRANSPORT: 'file' },
      stderr: 'pipe',
    })
    expect(await bad.exited).toBe(2)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
