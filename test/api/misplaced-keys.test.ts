// A body key one level off (an option beside "message", a criterion beside "filter", a cursor inside it) is named by its own path with where it belongs.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { send } from './support/harness.ts'
import { appOnUnreachedDatabase } from './support/unreached-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// Each body is refused by its shape, before a statement runs: no database is reached, so the 400
// also shows nothing was enqueued (a request that reached one would answer 503).
const s = appOnUnreachedDatabase()
const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }

describe('POST /v1/outbox', () => {
  test('an option given beside "message" is named, with "options" as its place; nothing is enqueued', async () => {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message, priority: 5, sendAt: '2030-01-01T00:00:00Z' },
    })
    expect(r.status).toBe(400)
    expect((r.body as { errors: unknown }).errors).toEqual([
      {
        path: 'priority',
        message: 'is not a key of the body (message, options): it belongs inside "options"',
      },
      {
        path: 'sendAt',
        message: 'is not a key of the body (message, options): it belongs inside "options"',
      },
    ])
  })

  test('another unknown key beside "message" is named with the keys the body takes', async () => {
    const r = await send(s.app, 'POST', '/v1/outbox', { token: s.tk, body: { message, bogus: 1 } })
    expect(r.status).toBe(400)
    expect(r.body).toMatchObject({
      detail: 'bogus: is not a key of the body (message, options)',
      errors: [{ path: 'bogus', message: 'is not a key of the body (message, options)' }],
    })
  })
})

describe('POST /v1/outbox/cancel and /v1/outbox/retry', () => {
  for (const action of ['cancel', 'retry']) {
    test(`${action}: a criterion given beside "filter" is named, with "filter" as its place`, async () => {
      const r = await send(s.app, 'POST', `/v1/outbox/${action}`, {
        token: s.tk,
        body: { ids: ['1'], dryRun: true },
      })
      expect(r.status).toBe(400)
      expect((r.body as { errors: unknown }).errors).toEqual([
        {
          path: 'filter',
          message:
            'is required: the body must be {"filter": {...}, "dryRun": ..., "limit": ...} (dryRun and limit optional)',
        },
        {
          path: 'ids',
          message:
            'is not a key of the body (filter, dryRun, limit, cursor): it belongs inside "filter"',
        },
      ])
    })

    test(`${action}: a key of the body given inside "filter" is named, with the body as its place`, async () => {
      const r = await send(s.app, 'POST', `/v1/outbox/${action}`, {
        token: s.tk,
        body: { filter: { tenant: 'acme', cursor: 'x', dryRun: true, limit: 5 } },
      })
      expect(r.status).toBe(400)
      const criteria =
        'is not a criterion of filter (status, tenant, createdFrom, createdTo, sentFrom, sentTo, dedupeKey, correlationId, lastErrorCode, template, ids, mayHaveBeenDelivered)'
      expect((r.body as { errors: unknown }).errors).toEqual(
        ['cursor', 'dryRun', 'limit'].map((key) => ({
          path: `filter.${key}`,
          message: `${criteria}: it belongs next to "filter", not inside it`,
        })),
      )
    })

    test(`${action}: an unknown criterion inside "filter" is named with the criteria it takes`, async () => {
      const r = await send(s.app, 'POST', `/v1/outbox/${action}`, {
        token: s.tk,
        body: { filter: { tenant: 'acme', state: 'failed' } },
      })
      expect(r.status).toBe(400)
      expect((r.body as { errors: unknown }).errors).toEqual([
        {
          path: 'filter.state',
          message:
            'is not a criterion of filter (status, tenant, createdFrom, createdTo, sentFrom, sentTo, dedupeKey, correlationId, lastErrorCode, template, ids, mayHaveBeenDelivered)',
        },
      ])
    })
  }
})
