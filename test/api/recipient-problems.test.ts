// An address field of the wrong shape is a 400 naming the entry and what it must be, not zod's bare "Invalid input" at the field.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { send } from './support/harness.ts'
import { appOnUnreachedDatabase } from './support/unreached-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// Every case is refused before a statement runs: no database is reached (nor needed).
const s = appOnUnreachedDatabase()

test('each wrong shape names the entry, or the field inside it, and what it must be', async () => {
  const base = { subject: 's', text: 't' }
  const cases: [Record<string, unknown>, { path: string; message: string }[]][] = [
    [
      { to: 5 },
      [
        {
          path: 'message.to',
          message: 'must be an address string, {"address","name"} or a list of them',
        },
      ],
    ],
    [
      { to: ['a@example.com', 5] },
      [{ path: 'message.to.1', message: 'must be an address string or {"address","name"}' }],
    ],
    [
      { to: [{ address: 'a@example.com', name: 5 }] },
      [{ path: 'message.to.0.name', message: 'must be a string, not a number' }],
    ],
    [
      { to: { address: 7 } },
      [{ path: 'message.to.address', message: 'must be a string, not a number' }],
    ],
    [
      { to: 'a@example.com', from: ['b@example.com'] },
      [{ path: 'message.from', message: 'must be an address string or {"address","name"}' }],
    ],
  ]
  for (const [fields, errors] of cases) {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message: { ...base, ...fields } },
    })
    expect([fields, r.status, (r.body as { errors?: unknown }).errors]).toEqual([
      fields,
      400,
      errors,
    ])
  }
})
