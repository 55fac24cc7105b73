// status's exit code: the worst database decides, unreachable before permission before schema before attention.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { DatabaseReading } from '../../src/status/database-status.ts'
import { exitCodeOf, judge } from '../../src/status/status-report.ts'
import type { DatabaseStatus, Health } from '../../src/status/status-shape.ts'
import { renderStatusTable } from '../../src/status/status-table.ts'
import { NO_CREDENTIAL_REFUSED } from '../support/no-credential-refused.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const db = (health: Health) => ({ health }) as DatabaseStatus

test('each health has its exit code, and the worst database decides: 4, then 6, then 3, then 5', () => {
  expect(
    ['ok', 'attention', 'schema', 'permission', 'unreachable'].map((h) =>
      exitCodeOf([db(h as Health)]),
    ),
  ).toEqual([0, 5, 3, 6, 4])
  expect(exitCodeOf([db('permission'), db('unreachable')])).toBe(4)
  expect(exitCodeOf([db('schema'), db('permission'), db('attention')])).toBe(6)
  expect(exitCodeOf([db('attention'), db('schema')])).toBe(3)
  expect(exitCodeOf([])).toBe(0)
})

/** One database read: a pending row due `age` seconds ago, and `pastExpiry` pending rows past their expiresAt. */
const reading = (age: number | null, pastExpiry = 0): DatabaseReading => ({
  name: 'default',
  url: 'postgres://db/app',
  reachable: true,
  error: null,
  schema: null,
  readOnly: false,
  stats: {
    counts: { pending: 1 + pastExpiry, sending: 0, sent: 0, failed: 0, cancelled: 0 },
    oldestPendingAgeSeconds: age,
    heldBackPending: 0,
    pastExpiryPending: pastExpiry,
    pausedMailboxes: 0,
    pausedMailboxesRefused: 0,
    refusedMailboxPending: 0,
    credentialRefused: NO_CREDENTIAL_REFUSED,
  },
  presence: null,
  failures: null,
  pendingErrors: null,
  pauses: null,
  pacing: null,
  unread: [],
})
const thresholds = { maxPendingAgeSeconds: 600, leaseSeconds: 60 }

test('a due row needs attention once it has waited longer than --max-pending-age, not at it', () => {
  const judged = (age: number) => judge(reading(age), thresholds, (s) => s)
  expect([judged(600).health, judged(601).health]).toEqual(['ok', 'attention'])
  expect(judged(601).reasons).toEqual([
    'the oldest due pending row has waited 601 s (more than 600 s)',
  ])
})

test("rows waiting past their expiresAt (for an interrupted send's lookup) are shown, in the JSON and as a line of the table, and need no attention: they end by themselves", () => {
  const judged = judge(reading(null, 2), thresholds, (s) => s)
  expect({ health: judged.health, pastExpiryPending: judged.pastExpiryPending }).toEqual({
    health: 'ok',
    pastExpiryPending: 2,
  })
  const table = renderStatusTable({
    version: 'test',
    thresholds,
    exitCode: 0,
    warnings: [],
    databases: [judged],
  })
  expect(table).toContain(
    "default: 2 pending row(s) past their expiresAt (none is sent past it): with GRAPH_MAILBOX_LOOKUP=true, rows whose interrupted send waits to be looked up (not due meanwhile, so not in OLDEST DUE), for up to the lookup grace plus an hour past their expiresAt, then failed expired; besides those, rows no worker has failed yet (each worker's reclaim fails them within LEASE_SECONDS)",
  )
  expect(
    renderStatusTable({
      version: 'test',
      thresholds,
      exitCode: 0,
      warnings: [],
      databases: [judge(reading(null), thresholds, (s) => s)],
    }),
  ).not.toContain('past their expiresAt')
})

test('a mailbox paused by Graph refusing it while rows that send from it are pending needs attention, whatever their age: its rows given back to the pause’s end are not due; a throttle’s pause, or a refusal no pending row sends from, does not', () => {
  /** `refused` of one paused mailbox, `waiting` rows sending from it among 10 pending. */
  const paused = (refused: number, waiting: number): DatabaseReading => {
    const r = reading(null)
    return {
      ...r,
      stats: r.stats && {
        ...r.stats,
        counts: { ...r.stats.counts, pending: 10 },
        pausedMailboxes: 1,
        pausedMailboxesRefused: refused,
        refusedMailboxPending: waiting,
      },
      pauses: { mailboxes: 1, refused, longestSeconds: 290, noneSentForSeconds: null },
    }
  }
  const refused = judge(paused(1, 3), thresholds, (s) => s)
  expect({
    health: refused.health,
    reasons: refused.reasons,
    paused: refused.pausedMailboxes,
  }).toEqual({
    health: 'attention',
    reasons: [
      'Graph refuses 1 sender mailbox(es), each paused meanwhile, and 3 pending row(s) send from it: they wait until MAIL_FROM or the mailbox is fixed (the workers’ log and /readyz name Graph’s code; GET /v1/outbox?status=pending lists the rows)',
    ],
    paused: { count: 1, longestSeconds: 290, refused: 1, refusedPending: 3 },
  })
  expect(exitCodeOf([refused])).toBe(5)
  expect(judge(paused(0, 0), thresholds, (s) => s).health).toBe('ok')
  // Ten rows pending, none of them the refused mailbox's: it ends by itself.
  expect(judge(paused(1, 0), thresholds, (s) => s).health).toBe('ok')
})

test('rows waiting with none sent for longer than --max-send-gap need attention while a throttle’s pause stands or they wait on Graph out of reach: an outage; not within it, nor with neither, nor for a refused mailbox alone', () => {
  /** 10 rows pending, none sent for `gap` s; `throttles` mailboxes paused by a throttle, `refused` by a refusal; `away` rows waiting on graph_unreachable. */
  const quiet = (
    gap: number | null,
    o: { throttles?: number; refused?: number; away?: number } = {},
  ): DatabaseReading => {
    const r = reading(null)
    const [throttles, refused, away] = [o.throttles ?? 0, o.refused ?? 0, o.away ?? 0]
    return {
      ...r,
      stats: r.stats && { ...r.stats, counts: { ...r.stats.counts, pending: 10 } },
      pauses: {
        mailboxes: throttles + refused,
        refused,
        longestSeconds: throttles + refused > 0 ? 25 : null,
        noneSentForSeconds: gap,
      },
      pendingErrors: {
        total: 10,
        byCode: [
          ...(away > 0 ? [{ code: 'graph_unreachable', rows: away }] : []),
          { code: 'ServiceUnavailable', rows: 10 - away },
        ],
        complete: true,
      },
    }
  }
  const judged = (r: DatabaseReading, maxSendGapSeconds?: number) =>
    judge(r, { ...thresholds, ...(maxSendGapSeconds && { maxSendGapSeconds }) }, (s) => s)
  const paused = judged(quiet(301.4, { throttles: 1 }))
  expect({
    health: paused.health,
    reasons: paused.reasons,
    quiet: paused.noneSentForSeconds,
  }).toEqual({
    health: 'attention',
    reasons: [
      "no row sent for 301 s (more than --max-send-gap, 300 s) while 10 pending row(s) wait on 1 sender mailbox(es) paused by a provider throttle: most likely a Graph outage answering 503 or 504 (or 429) to every send (Microsoft 365's service health says whether Graph is down; the pending rows' codes below say what it answered; nothing is lost or counted as an attempt meanwhile)",
    ],
    quiet: 301.4,
  })
  expect(exitCodeOf([paused])).toBe(5)
  const away = judged(quiet(900, { away: 4 }))
  expect(away.reasons).toEqual([
    expect.stringMatching(
      /^no row sent for 900 s \(more than --max-send-gap, 300 s\) while 10 pending row\(s\) wait on Graph out of reach or refusing every token \(graph_unreachable 4\): the deploy guide's "Graph out of reach" \(/,
    ),
  ])
  expect(
    [
      quiet(300, { throttles: 1 }),
      quiet(null, { throttles: 1, away: 4 }),
      quiet(900),
      quiet(900, { refused: 1 }),
    ].map((r) => judged(r).health),
  ).toEqual(['ok', 'ok', 'ok', 'ok'])
  // --max-send-gap 600: the same 301 s is within it.
  expect(judged(quiet(301.4, { throttles: 1 }), 600).health).toBe('ok')
})

test("live workers noting their Graph credential refused while rows are pending need attention, each code with what it means and the guide's row; with none pending, a line of the table says so and the exit stays 0", () => {
  const refused = (pending: number): DatabaseReading => {
    const r = reading(null)
    return {
      ...r,
      stats: r.stats && {
        ...r.stats,
        counts: { ...r.stats.counts, pending },
        credentialRefused: {
          workers: 2,
          codes: ['AADSTS7000222', 'AADSTS9999999'],
          since: '2026-12-07T08:00:00.000Z',
          cachedTokenWorkers: 0,
          cachedTokenServesUntil: null,
        },
      },
    }
  }
  const waiting = judge(refused(3), thresholds, (s) => s)
  expect({ health: waiting.health, reasons: waiting.reasons }).toEqual({
    health: 'attention',
    reasons: [
      `Entra refuses the Graph credential of 2 live worker(s) (AADSTS7000222: the client secret has expired: create a new one; AADSTS9999999) since 2026-12-07T08:00:00.000Z, and 3 pending row(s) wait: nothing of theirs goes out once a token fetched before the refusal ends (an hour at most) until it is fixed (a new GRAPH_CLIENT_SECRET or GRAPH_CERTIFICATE, or the app registration mended: the deploy guide's "Credential refused")`,
    ],
  })
  expect(exitCodeOf([waiting])).toBe(5)
  const idle = judge(refused(0), thresholds, (s) => s)
  expect({ health: idle.health, credentialRefused: idle.credentialRefused }).toEqual({
    health: 'ok',
    credentialRefused: {
      workers: 2,
      codes: ['AADSTS7000222', 'AADSTS9999999'],
      since: '2026-12-07T08:00:00.000Z',
      cachedTokenWorkers: 0,
      cachedTokenServesUntil: null,
    },
  })
  const table = (d: DatabaseStatus) =>
    renderStatusTable({ version: 'test', thresholds, exitCode: 0, warnings: [], databases: [d] })
  expect(table(idle)).toContain(
    'default: Entra refuses the Graph credential of 2 live worker(s) (AADSTS7000222: the client secret has expired: create a new one; AADSTS9999999) since 2026-12-07T08:00:00.000Z: no row waits on it yet\n',
  )
  // Said once, as the reason, when rows wait.
  expect(table(waiting).match(/Entra refuses/g)).toHaveLength(1)
  expect(table(judge(reading(null), thresholds, (s) => s))).not.toContain('Entra refuses')
})

test('refused workers whose cached token still serves: the reason says until when they still send, by how many of them, the first end of several', () => {
  const serving = (workers: number, cached: number, until: string | null) => {
    const r = reading(null)
    return judge(
      {
        ...r,
        stats: r.stats && {
          ...r.stats,
          counts: { ...r.stats.counts, pending: 4 },
          credentialRefused: {
            workers,
            codes: ['AADSTS7000222'],
            since: '2026-12-07T08:00:00.000Z',
            cachedTokenWorkers: cached,
            cachedTokenServesUntil: until,
          },
        },
      },
      thresholds,
      (s) => s,
    )
  }
  const at = '2026-12-07T08:45:00.000Z'
  const words = (d: DatabaseStatus) =>
    d.reasons[0]
      ?.replace(/^Entra refuses .* since 2026-12-07T08:00:00\.000Z/, '')
      .replace(/: nothing of theirs .*$/, '')
  expect(
    [
      serving(1, 1, at),
      serving(3, 3, at),
      serving(3, 1, at),
      serving(3, 2, at),
      serving(2, 0, null),
    ].map((d) => [d.health, words(d)]),
  ).toEqual([
    [
      'attention',
      `, still sending on its cached token until ${at} (database time), and 4 pending row(s) wait`,
    ],
    [
      'attention',
      `, still sending on their cached tokens until ${at} (database time, the first of them), and 4 pending row(s) wait`,
    ],
    [
      'attention',
      `, 1 of them still sending on its cached token until ${at} (database time), and 4 pending row(s) wait`,
    ],
    [
      'attention',
      `, 2 of them still sending on their cached tokens until ${at} (database time, the first of them), and 4 pending row(s) wait`,
    ],
    ['attention', ', and 4 pending row(s) wait'],
  ])
})

test('rows waiting on Entra (a token request hung, timed out, failed or refused: token_…, AADSTS…) with none sent for longer than --max-send-gap need attention: that wait pauses no mailbox and moves each row ahead', () => {
  const entra = (gap: number | null, byCode: { code: string; rows: number }[]): DatabaseReading => {
    const r = reading(null)
    return {
      ...r,
      stats: r.stats && { ...r.stats, counts: { ...r.stats.counts, pending: 10 } },
      pauses: { mailboxes: 0, refused: 0, longestSeconds: null, noneSentForSeconds: gap },
      pendingErrors: { total: 10, byCode, complete: true },
    }
  }
  const judged = judge(
    entra(900, [
      { code: 'token_timeout', rows: 6 },
      { code: 'token_slow', rows: 4 },
    ]),
    thresholds,
    (s) => s,
  )
  expect(judged.health).toBe('attention')
  expect(judged.reasons).toEqual([
    expect.stringMatching(
      /^no row sent for 900 s \(more than --max-send-gap, 300 s\) while 10 pending row\(s\) wait on Entra giving no token: hung, out of reach, failing or refusing the token requests \(token_timeout 6, token_slow 4\): the deploy guide's "Token failures" \(/,
    ),
  ])
  // Within the gap, or rows waiting on something else: no outage told.
  expect(
    [
      entra(300, [{ code: 'token_timeout', rows: 10 }]),
      entra(null, [{ code: 'token_slow', rows: 10 }]),
      entra(900, [{ code: 'ErrorInvalidRecipients', rows: 10 }]),
    ].map((r) => judge(r, thresholds, (s) => s).health),
  ).toEqual(['ok', 'ok', 'ok'])
})
