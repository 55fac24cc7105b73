// A bulk cancel's or retry's dry run counts what its loop then acts on: given no cursor the whole loop, given a call's cursor the rest of it.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const s = appOnOwnDatabase()

/** Each state a row can be in that a bulk action tells apart, as a worker or a hand leaves it. */
const SHAPES: Record<string, string> = {
  pending: '',
  // An interrupted send's mark: a cancel records the request for its lookup.
  pendingMarked: `send_started_at = now()`,
  pendingMarkedRecorded: `send_started_at = now(), cancel_requested_at = now()`,
  pendingRecorded: `cancel_requested_at = now()`,
  sendingUnstarted: `status = 'sending', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute', attempts = 1`,
  sendingStarted: `status = 'sending', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute', attempts = 1, send_started_at = now()`,
  sendingRequested: `status = 'sending', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute', attempts = 1, cancel_requested_at = now()`,
  failedThrottled: `status = 'failed', attempts = 3, last_error_code = 'throttled'`,
  failedRecipients: `status = 'failed', attempts = 3, last_error_code = 'ErrorInvalidRecipients'`,
  failedExpired: `status = 'failed', attempts = 3, last_error_code = 'throttled', send_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'`,
  cancelledThrottled: `status = 'cancelled', last_error_code = 'throttled'`,
  sent: `status = 'sent', attempts = 1, sent_at = now()`,
}
const TENANTS = ['acme', 'beta']
const FROMS = ['support@shop-a.example', 'ceo@acme.example']

/** A seeded generator (mulberry32): the same outbox for a seed, run after run. */
function random(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` rows of random shapes, tenants and senders (`next`'s): one statement a shape. */
async function addRows(next: () => number, n: number) {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!
  const rows = Array.from({ length: n }, () => ({
    tenant: pick(TENANTS),
    from: pick(FROMS),
    shape: pick(Object.keys(SHAPES)),
  }))
  const { rows: ids } = await s.t.pool.query<{ id: string }>(
    `select mailer.enqueue_email(jsonb_build_object('from', r.f, 'to', 'ada@example.com',
                                 'subject', 'Hi', 'text', 'x'), jsonb_build_object('tenant', r.t))::text as id
       from unnest($1::text[], $2::text[]) with ordinality as r(t, f, n) order by r.n`,
    [rows.map((r) => r.tenant), rows.map((r) => r.from)],
  )
  for (const [shape, set] of Object.entries(SHAPES)) {
    const of = ids.filter((_, i) => rows[i]!.shape === shape).map((r) => r.id)
    if (set === '' || of.length === 0) continue
    await s.t.pool.query(`update mailer.email_outbox set ${set} where id = any($1::bigint[])`, [of])
  }
}

/** What a busy outbox does between a loop's calls: a row of each call's matches again, two more rows come. */
const MEANWHILE = {
  // Cancelled, then requeued by another hand: pending again, behind the loop's position.
  cancel: `update mailer.email_outbox set status = 'pending', cancel_requested_at = null
            where id = any($1::bigint[]) and status = 'cancelled'`,
  // Requeued, then failed again the same way.
  retry: `update mailer.email_outbox set status = 'failed', attempts = 3
           where id = any($1::bigint[]) and status = 'pending'`,
}

interface Answer {
  matched: number
  items: { id: string }[]
  nextCursor?: string
  outsideSenders?: number
}

/**
 * The loop run with `limit`, each call after a dry run given its cursor: every disagreement between
 * what a dry run counted and what the loop then acted on (none: []).
 */
async function disagreements(
  action: 'cancel' | 'retry',
  filter: object,
  tk: string,
  limit: number,
  next: () => number,
): Promise<{ found: object[]; acted: number }> {
  const call = async (body: object) =>
    (await send(s.app, 'POST', `/v1/outbox/${action}`, { token: tk, body: { filter, ...body } }))
      .body as Answer
  const dry: { matched: number; outsideSenders?: number | undefined }[] = []
  const acted: number[] = []
  const outside: (number | undefined)[] = []
  let cursor: string | undefined
  for (let more = true; more && acted.length < 30; ) {
    const c = cursor === undefined ? {} : { cursor }
    const d = await call({ ...c, dryRun: true })
    dry.push({ matched: d.matched, outsideSenders: d.outsideSenders })
    const r = await call({ ...c, limit })
    acted.push(r.items.length)
    outside.push(r.outsideSenders)
    await s.t.pool.query(MEANWHILE[action], [r.items.slice(0, 1).map((i) => i.id)])
    await addRows(next, 2)
    cursor = r.nextCursor
    more = cursor !== undefined
  }
  const found = dry.flatMap((d, i) => {
    const rest = acted.slice(i).reduce((a, b) => a + b, 0)
    const wrong = d.matched !== rest || d.outsideSenders !== outside[i]
    return wrong ? [{ call: i, dry: d, loopActedOn: rest, outsideSenders: outside[i] }] : []
  })
  return { found, acted: acted.reduce((a, b) => a + b, 0) }
}

const CANCELS: object[] = [
  { status: ['pending'] },
  { status: ['pending', 'sending'] },
  { status: ['sending'], tenant: 'acme' },
  { tenant: 'beta' },
  { lastErrorCode: 'throttled' },
]
const RETRIES: object[] = [
  { status: ['failed'] },
  { status: ['failed', 'cancelled'], tenant: 'acme' },
  { lastErrorCode: 'throttled' },
  { status: ['cancelled'], lastErrorCode: 'throttled' },
  { tenant: 'beta', lastErrorCode: 'ErrorInvalidRecipients' },
]

describe("a bulk loop's dry run", () => {
  const seed = 0x5eed
  test(`counts what the loop acts on, whole and from each call's cursor, over seeded outboxes (seed ${seed})`, async () => {
    const tokens = {
      full: s.tk,
      acme: await token({ tenant: 'acme' }),
      confined: await token({ extra: { senders: [FROMS[0]] } }),
    }
    const found: object[] = []
    let acted = 0
    let loops = 0
    for (const [action, filters] of [
      ['cancel', CANCELS],
      ['retry', RETRIES],
    ] as const) {
      for (const [i, filter] of filters.entries()) {
        // Every filter with the full token; each with one other, in turn: a tenant's, a claim's.
        const other = action === 'retry' && i % 2 === 1 ? 'confined' : 'acme'
        for (const who of ['full', other] as const) {
          const limit = 2 + (loops++ % 2)
          await s.t.reset()
          const next = random(seed + loops)
          await addRows(next, 14)
          const r = await disagreements(action, filter, tokens[who], limit, next)
          acted += r.acted
          for (const d of r.found) found.push({ action, filter, who, limit, ...d })
        }
      }
    }
    expect(found).toEqual([])
    // The outboxes gave the loops rows to act on, not empty answers agreeing.
    expect(acted).toBeGreaterThan(loops)
  })
})
