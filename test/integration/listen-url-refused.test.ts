// A LISTEN_DATABASE_URL the server refuses at login while DATABASE_URL works (a password rotated in one secret only): /readyz and the log name the variable and what to check.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('the direct URL refused at login: /readyz says the listener cannot connect, through which variable, why and what to check', async () => {
  // A database name the server does not have (3D000): refused at login whatever the cluster's auth.
  const listenUrl = new URL(t.url)
  listenUrl.pathname = '/no_such_database'
  const lines: Record<string, unknown>[] = []
  const running = await serve(
    loadConfig({
      DATABASE_URL: t.url,
      LISTEN_DATABASE_URL: listenUrl.toString(),
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      PORT: '0',
      API_JWT_SECRET: 'k'.repeat(40),
    }),
    { role: 'all', log: createLogger('info', (l) => lines.push(JSON.parse(l))) },
  )
  try {
    // Until its first connect has failed, the listener is only "connecting" (a loaded machine's
    // /readyz said so first): the verdict awaited is the one after that failure.
    const problem = await pollUntil(async () => {
      const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
      const body = (await r.json()) as { databases: { problem: string | null }[] }
      const p = body.databases[0]?.problem ?? null
      const settled = p?.startsWith('listener') && !p.startsWith('listener is connecting')
      return r.status === 503 && settled ? p : undefined
    }, 20_000)
    expect(problem).toStartWith(
      "listener cannot connect (LISTEN_DATABASE_URL): the database refused this service's connection (SQLSTATE 3D000: the database does not exist",
    )
    expect(problem).toContain('check the database name')
    expect(lines.find((l) => l.msg === 'listener could not connect')).toMatchObject({
      level: 'warn',
      db: 'default',
      variable: 'LISTEN_DATABASE_URL',
    })
  } finally {
    await running.stop('test')
  }
})
