// Graph itself out of reach (no connection) or refusing every token (401 after a refresh), through the drainer and the real sender: rows wait uncounted, then go out once.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { closedPort } from '../support/closed-port.ts'
import { useTestDb } from '../support/db.ts'
import { allIn } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { generateTestCertificate, type TestCertificate } from '../support/fake-graph.ts'
import { type OutageRun, PAST_ANY_BACKOFF_MS, startOutage } from '../support/token-outage.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

let cert: TestCertificate
let downPort = 0
beforeAll(async () => {
  cert = await generateTestCertificate()
  // Port 1, seen refused (ECONNREFUSED): a port freed here could be another run's by the first send.
  downPort = await closedPort()
})

let run: OutageRun | null = null
afterEach(async () => {
  await run?.stop()
  run = null
})

/**
 * The transport's fetch: while `down`, every Graph API request (not Entra's token endpoint) goes to
 * the closed port, as with egress to Graph blocked; `tried` counts them.
 */
function cutOffGraph() {
  const state = { down: true, tried: 0 }
  const f = ((input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    if (state.down && url.pathname.startsWith('/v1.0/')) {
      state.tried++
      return fetch(`http://127.0.0.1:${downPort}${url.pathname}${url.search}`, init)
    }
    return fetch(input, init)
  }) as typeof fetch
  return { state, fetch: f }
}

/**
 * Cycle `k` (1-based): past the first, any back-off passes (the transport's clock) and so do the
 * rows' waits (database time); then waits until Graph was tried at least `k` times and the worker
 * is idle with no row due.
 */
async function cycle(r: OutageRun, k: number, tried: () => number) {
  if (k > 1) {
    r.clock.advance(PAST_ANY_BACKOFF_MS)
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() where status = 'pending' and send_at > now()`,
    )
    r.engine.drainer.wake()
  }
  await pollUntil(async () => {
    if (tried() < k || r.engine.drainer.status().inFlight > 0) return undefined
    const s = await t.pool.query(
      `select count(*) filter (where status = 'sending')::int as sending,
              count(*) filter (where status = 'pending' and send_at <= now())::int as due
         from mailer.email_outbox`,
    )
    if (r.engine.drainer.status().inFlight > 0) return undefined
    return s.rows[0].sending === 0 && s.rows[0].due === 0 ? true : undefined
  }, 30_000)
}

const rowStates = async () =>
  (
    await t.pool.query(
      `select distinct status, attempts, last_error_code, send_started_at is not null as marked
         from mailer.email_outbox`,
    )
  ).rows
const historyPerRow = async () =>
  (
    await t.pool.query<{ n: number }>(
      `select (select count(*) from mailer.email_attempts a where a.outbox_id = o.id)::int as n
         from mailer.email_outbox o order by o.id`,
    )
  ).rows.map((x) => x.n)

async function graphBack(r: OutageRun) {
  r.clock.advance(PAST_ANY_BACKOFF_MS)
  await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
  r.engine.drainer.wake()
}

const ROWS = 30
/** More cycles than the test engine's maxAttempts (3): a counted wait fails every row. */
const CYCLES = 8
/** The shared send gate's provider slots (startOutage): requests in flight before the first failure. */
const GATE_SLOTS = 4

describe('Graph unreachable (connections refused)', () => {
  test('cycle after cycle of back-off, rows wait uncounted, one request probes per back-off, each row recorded once; then every row goes out once', async () => {
    const cut = cutOffGraph()
    const lines: { level: string; msg: string; outcome?: string }[] = []
    const r = await startOutage(t, {
      rows: ROWS,
      cert,
      tokenFault: null,
      fetch: cut.fetch,
      log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    })
    run = r
    for (let k = 1; k <= CYCLES; k++) await cycle(r, k, () => cut.state.tried)
    console.log(
      `[graph-outage] ${ROWS} rows, ${CYCLES} cycles of Graph refusing connections: ` +
        `${cut.state.tried} Graph requests, ${r.claims.rows} rows claimed, ${r.permits()} provider slots taken`,
    )
    expect(await rowStates()).toEqual([
      { status: 'pending', attempts: 0, last_error_code: 'graph_unreachable', marked: false },
    ])
    // At most the gate's slots before the first refusal was known, then one probe per back-off.
    expect(cut.state.tried).toBeLessThanOrEqual(GATE_SLOTS + CYCLES - 1)
    expect((await historyPerRow()).every((n) => n <= 1)).toBe(true)
    // Said by the transport as a run: its start, then a reminder at most every 5 minutes (each
    // cycle moves its clock 10), never once per row; no address in any line.
    const loud = lines.filter((l) => l.level === 'warn' || l.level === 'error')
    expect(new Set(loud.map((l) => l.msg))).toEqual(
      new Set(['graph unreachable: mail waits, uncounted']),
    )
    expect(loud.length).toBeLessThanOrEqual(CYCLES)
    expect(JSON.stringify(lines)).not.toMatch(/@|%40/)
    expect(lines.filter((l) => l.outcome === 'throttled' && l.level !== 'debug')).toEqual([])
    expect(r.transport.warning()).toMatch(/^graph unreachable since .* \(ECONNREFUSED\)/)
    expect(r.transport.graphOutage()).toBe('unreachable')

    cut.state.down = false
    await graphBack(r)
    await allIn(t, 'sent', ROWS)
    expect(r.fake.accepted.map((m) => m.outboxId).sort()).toEqual([...r.ids].sort())
    expect(await rowStates()).toEqual([
      { status: 'sent', attempts: 1, last_error_code: null, marked: false },
    ])
    expect(r.transport.warning()).toBeNull()
    expect(r.transport.graphOutage()).toBeNull()
    expect(lines.filter((l) => l.msg === 'graph reachable again')).toHaveLength(1)
  })

  test('rows whose earlier send was interrupted: the lookup that cannot reach Graph waits the same (uncounted, marked); then each is looked up and goes out once', async () => {
    const cut = cutOffGraph()
    const r = await startOutage(t, {
      rows: ROWS,
      cert,
      tokenFault: null,
      fetch: cut.fetch,
      interrupted: true,
    })
    run = r
    for (let k = 1; k <= CYCLES; k++) await cycle(r, k, () => cut.state.tried)
    expect(await rowStates()).toEqual([
      { status: 'pending', attempts: 0, last_error_code: 'graph_unreachable', marked: true },
    ])
    expect((await historyPerRow()).every((n) => n <= 1)).toBe(true)

    cut.state.down = false
    await graphBack(r)
    await allIn(t, 'sent', ROWS)
    // Looked up (not found) before each send: every row went out once.
    expect(r.fake.accepted.map((m) => m.outboxId).sort()).toEqual([...r.ids].sort())
  })

  test('past THROTTLE_DEADLINE_SECONDS the rows fail `throttled`, the cause in their last error', async () => {
    const cut = cutOffGraph()
    const r = await startOutage(t, {
      rows: 6,
      cert,
      tokenFault: null,
      fetch: cut.fetch,
      config: { throttleDeadlineSeconds: 60 },
    })
    run = r
    await cycle(r, 1, () => cut.state.tried)
    await t.pool.query(
      `update mailer.email_attempts set finished_at = finished_at - interval '1 hour'`,
    )
    await cycle(r, 2, () => cut.state.tried)
    await allIn(t, 'failed', 6)
    const rows = await t.pool.query(
      'select distinct attempts, last_error_code, last_error from mailer.email_outbox',
    )
    expect(rows.rows).toEqual([
      {
        attempts: 0,
        last_error_code: 'throttled',
        last_error: expect.stringMatching(
          /^still throttled at the throttle deadline: Graph unreachable \(ECONNREFUSED/,
        ),
      },
    ])
  })
})

describe('a connection reset after the request went out (Graph may have the message)', () => {
  test('is no outage: an ordinary counted retry, its send marked for the lookup, never resent blindly', async () => {
    let resets = 0
    const reset = ((input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : String(input))
      if (url.pathname.endsWith('/sendMail')) {
        resets++
        return Promise.reject(
          Object.assign(new TypeError('socket hang up'), { code: 'ECONNRESET' }),
        )
      }
      return fetch(input, init)
    }) as typeof fetch
    const r = await startOutage(t, { rows: 1, cert, tokenFault: null, fetch: reset })
    run = r
    await cycle(r, 1, () => resets)
    expect(await rowStates()).toEqual([
      { status: 'pending', attempts: 1, last_error_code: 'network', marked: true },
    ])
    expect(r.transport.graphOutage()).toBeNull()
    expect(r.transport.warning()).toBeNull()
  })
})

describe('Graph answering 401 to every token, a freshly fetched one too', () => {
  test('rows wait uncounted, one probe per back-off; once Graph takes the token every row goes out once', async () => {
    let down = true
    let refused = 0
    const r = await startOutage(t, {
      rows: ROWS,
      cert,
      tokenFault: null,
      // Not due before Graph refuses the tokens.
      options: () => ({ sendAt: new Date(Date.now() + 3600_000).toISOString() }),
    })
    run = r
    r.fake.setFaults({
      pickSendMail: () => {
        if (!down) return undefined
        refused++
        return {
          status: 401,
          code: 'InvalidAuthenticationToken',
          message: 'Access token validation failure. Invalid audience.',
        }
      },
    })
    await t.pool.query(`update mailer.email_outbox set send_at = now()`)
    r.engine.drainer.wake()
    for (let k = 1; k <= CYCLES; k++) await cycle(r, k, () => refused)
    console.log(
      `[graph-outage] ${ROWS} rows, ${CYCLES} cycles of Graph 401s: ${refused} Graph requests, ` +
        `${r.fake.tokenRequests.length} token requests`,
    )
    expect(await rowStates()).toEqual([
      { status: 'pending', attempts: 0, last_error_code: 'graph_unauthorized', marked: false },
    ])
    // Each probe is a request and its repeat with a fresh token.
    expect(refused).toBeLessThanOrEqual(2 * (GATE_SLOTS + CYCLES - 1))
    expect((await historyPerRow()).every((n) => n <= 1)).toBe(true)
    expect(r.transport.warning()).toMatch(
      /^graph refuses this app's tokens since .* \(HTTP 401 InvalidAuthenticationToken\)/,
    )
    expect(r.transport.graphOutage()).toBe('unauthorized')

    down = false
    await graphBack(r)
    await allIn(t, 'sent', ROWS)
    expect(r.fake.accepted.map((m) => m.outboxId).sort()).toEqual([...r.ids].sort())
    expect(r.transport.graphOutage()).toBeNull()
  })
})
