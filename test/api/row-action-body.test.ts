// POST /v1/outbox/{id}/cancel and /retry take no body: none, an empty one or {} act; any other is a 400 that changes nothing.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, type Sent, send, setState } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

const JSON_TYPE = { 'content-type': 'application/json' }

// Each action, the state its row must be in, and the status it leaves.
const ACTIONS = [
  { action: 'cancel', from: 'pending', to: 'cancelled' },
  { action: 'retry', from: 'failed', to: 'pending' },
] as const

async function rowIn(from: 'pending' | 'failed'): Promise<string> {
  const id = await enqueueSql(s.t.pool)
  if (from === 'failed') await setState(s.t.pool, id, 'failed')
  return id
}

async function statusOf(id: string): Promise<string> {
  const r = await s.t.pool.query('select status from mailer.email_outbox where id = $1', [id])
  return r.rows[0].status
}

function problemOf(r: Sent) {
  return r.body as { type: string; detail: string; errors: { path: string; message: string }[] }
}

describe('a single-row action', () => {
  for (const { action, from, to } of ACTIONS) {
    test(`${action}: no body, an empty one (any content type), {} and null still act`, async () => {
      const bodies: [string, { body?: string; headers?: Record<string, string> }][] = [
        ['no body', {}],
        ['empty, application/json', { body: '', headers: JSON_TYPE }],
        // curl -X POST -d '' sends this content type.
        [
          'empty, form',
          { body: '', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
        ],
        ['{}', { body: '{}', headers: JSON_TYPE }],
        ['{ } with white space', { body: ' { }\n', headers: JSON_TYPE }],
        ['white space', { body: '\r\n', headers: JSON_TYPE }],
        // A client whose serializer writes JSON's null for "no payload" (Go's json.Marshal(nil)).
        ['null', { body: 'null', headers: JSON_TYPE }],
        ['null with white space', { body: ' null\n', headers: JSON_TYPE }],
      ]
      for (const [label, o] of bodies) {
        const id = await rowIn(from)
        const r = await send(s.app, 'POST', `/v1/outbox/${id}/${action}`, { token: s.tk, ...o })
        expect([label, r.status, await statusOf(id)]).toEqual([label, 200, to])
      }
    })

    test(`${action}: a body with fields is a 400 naming each, the route's shape, and nothing changes`, async () => {
      const id = await rowIn(from)
      const r = await send(s.app, 'POST', `/v1/outbox/${id}/${action}`, {
        token: s.tk,
        body: { reason: 'customer asked' },
      })
      expect(r.status).toBe(400)
      const p = problemOf(r)
      expect(p.type).toBe('urn:outbox-mailer:problem:validation_failed')
      expect(p.errors).toEqual([
        {
          path: 'reason',
          message: `is not taken: POST /v1/outbox/{id}/${action} takes no body (send none, or {})`,
        },
      ])
      expect(p.detail).toBe(`reason: ${p.errors[0]!.message}`)
      expect(await statusOf(id)).toBe(from)
    })

    test(`${action}: a filter, or a criterion of one, sent to the row's route is pointed at the bulk route`, async () => {
      const id = await rowIn(from)
      const status = action === 'cancel' ? 'pending' : 'failed'
      for (const body of [
        { filter: { status: [status] } },
        { filter: { ids: [id] }, dryRun: true },
        { status: [status] },
        { ids: [id] },
      ]) {
        const r = await send(s.app, 'POST', `/v1/outbox/${id}/${action}`, { token: s.tk, body })
        const label = JSON.stringify(body)
        expect([label, r.status]).toEqual([label, 400])
        for (const e of problemOf(r).errors) {
          expect([label, e.message]).toEqual([
            label,
            `is not taken: POST /v1/outbox/{id}/${action} takes no body (send none, or {}); to ${action} the rows a filter matches, POST /v1/outbox/${action} {"filter": {...}}`,
          ])
        }
        expect(problemOf(r).errors.map((e) => e.path)).toEqual(Object.keys(body))
      }
      expect(await statusOf(id)).toBe(from)
    })

    test(`${action}: a body that is no object, or no JSON, is a 400 at the root and nothing changes`, async () => {
      const id = await rowIn(from)
      const bodies: [string, string, Record<string, string>][] = [
        ['text', 'please cancel', { 'content-type': 'text/plain' }],
        ['form', 'reason=x', { 'content-type': 'application/x-www-form-urlencoded' }],
        ['array', '[]', JSON_TYPE],
        ['string', '"x"', JSON_TYPE],
        ['malformed', '{', JSON_TYPE],
      ]
      for (const [label, body, headers] of bodies) {
        const r = await send(s.app, 'POST', `/v1/outbox/${id}/${action}`, {
          token: s.tk,
          body,
          headers,
        })
        expect([label, r.status, problemOf(r).errors]).toEqual([
          label,
          400,
          [
            {
              path: '(root)',
              message: `must be empty or {}: POST /v1/outbox/{id}/${action} takes no body`,
            },
          ],
        ])
      }
      expect(await statusOf(id)).toBe(from)
    })
  }
})
