// Graph's back-off, outage reports, request deadline and token hold-offs: timed on the monotonic clock, whatever the wall clock does meanwhile.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { secretCredential } from '../../src/transport/graph-credential.ts'
import { createGraphReachability } from '../../src/transport/graph-reachability.ts'
import { createGraphRequest } from '../../src/transport/graph-request.ts'
import { createTokenSource } from '../../src/transport/graph-token.ts'
import type { TokenSource } from '../../src/transport/token-source.ts'
import { boundedLatches } from '../support/bounded-latches.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** A clock moved only by the test: the wall reading stepped at will, the monotonic one advanced. */
function handClock() {
  const c = { wall: 1_750_000_000_000, mono: 1_000 }
  const clock: Clock = { now: () => c.wall, monotonic: () => c.mono, sleep: systemClock.sleep }
  return { c, clock }
}

/** A token source that always hands out a token and lets a 401'd one be refreshed. */
function tokens(): TokenSource {
  let n = 0
  let current = `t${n}`
  return {
    getToken: async () => current,
    invalidate: () => {
      current = `t${++n}`
      return true
    },
    accepted: () => {},
    refreshCount: () => n,
    lastError: () => null,
    refusedForMs: () => 0,
    throttledForMs: () => 0,
    retryInMs: () => 0,
    failingWith: () => null,
    servesForMs: () => 0,
    slowRequest: () => null,
    endsOrSlows: () => null,
    keepFresh: () => () => {},
  }
}

const unreachable = { code: 'ECONNREFUSED', message: 'Graph unreachable (ECONNREFUSED)' }

test('a wall clock stepped back does not stretch the back-off after Graph was out of reach', () => {
  const { c, clock } = handClock()
  const reach = createGraphReachability({ clock, log: silentLogger })
  const first = reach.failed('unreachable', unreachable)
  expect(first).toMatchObject({ kind: 'retry', afterMs: 5_000 })
  // An hour back on the wall clock: on it the back-off (and each row's wait) grew by that hour.
  c.wall -= 3_600_000
  expect(reach.holding()).toMatchObject({ afterMs: 5_000 })
  // Its 5 s passed: the next request probes.
  c.mono += 5_000
  expect(reach.holding()).toBeNull()
})

test('a wall clock stepped forward neither cuts the back-off short nor drops the outage from readiness', () => {
  const { c, clock } = handClock()
  const reach = createGraphReachability({ clock, log: silentLogger })
  reach.failed('unreachable', unreachable)
  const since = new Date(c.wall).toISOString()
  c.wall += 3_600_000
  c.mono += 1_000
  expect(reach.holding()).toMatchObject({ afterMs: 4_000 })
  expect(reach.cause()).toBe('unreachable')
  // The start shown is a wall time, as it was read then.
  expect(reach.warning()).toContain(`graph unreachable since ${since}`)
})

test('a wall clock stepped back ends the wait for a probe at the request deadline', async () => {
  const { c, clock } = handClock()
  const reachability = createGraphReachability({ clock, log: silentLogger })
  // Bounded and named: each comes within moments (the steps between are synchronous).
  const latches = boundedLatches(10_000)
  const answer = latches.make('the probe’s answer given by the test')
  const probing = latches.make('the probe’s request made')
  let calls = 0
  const fetch = (async () => {
    calls++
    probing.resolve()
    if (calls === 1) await answer.wait()
    return new Response(null, { status: 202 })
  }) as unknown as typeof globalThis.fetch
  const request = createGraphRequest({
    tokens: tokens(),
    fetch,
    clock,
    requestTimeoutMs: 30_000,
    reachability,
  })
  reachability.failed('unreachable', unreachable)
  c.mono += 5_000
  c.wall += 5_000
  const send = () =>
    request(
      'https://graph.example/v1.0/me/sendMail',
      { method: 'POST' },
      new AbortController().signal,
    )
  // The probe goes; a second request waits for its answer, which comes after that request's
  // deadline (its timer not fired yet) and after the wall clock stepped back an hour.
  const probe = send()
  const waiting = send()
  // The probe's request is made within its deadline.
  await probing.wait()
  c.mono += 31_000
  c.wall -= 3_600_000
  answer.resolve()
  await probe
  // Past its deadline it goes back unsent; on the wall clock it was still in time and was sent.
  expect(await waiting).toMatchObject({ unsent: true, failed: { code: 'graph_unreachable' } })
  expect(calls).toBe(1)
})

test('a token that comes past the request deadline, its timer not fired yet (the event loop starved), makes no request', async () => {
  const { c, clock } = handClock()
  let calls = 0
  const fetch = (async () => {
    calls++
    return new Response(null, { status: 202 })
  }) as unknown as typeof globalThis.fetch
  // The token's answer is taken up 31 s into a 30 s deadline (a template render of another row
  // held the event loop): the lease's margin covers one request timeout from the send's start,
  // and a reclaimer may have looked the row up and sent it by then.
  const slow = tokens()
  slow.getToken = async () => {
    c.mono += 31_000
    return 't0'
  }
  const request = createGraphRequest({
    tokens: slow,
    fetch,
    clock,
    requestTimeoutMs: 30_000,
    reachability: createGraphReachability({ clock, log: silentLogger }),
  })
  const exchange = await request(
    'https://graph.example/v1.0/me/sendMail',
    { method: 'POST' },
    new AbortController().signal,
  )
  expect(exchange).toMatchObject({
    unsent: true,
    failed: { kind: 'retry', code: 'token_timeout', ambiguous: false },
  })
  expect(calls).toBe(0)
})

test('a 401 met as the wall clock steps forward gets its fresh token and the request again', async () => {
  const { c, clock } = handClock()
  let calls = 0
  const fetch = (async () => {
    calls++
    if (calls === 1) {
      // The stale token's 401 comes at once; the wall clock jumps an hour meanwhile.
      c.wall += 3_600_000
      return new Response(JSON.stringify({ error: { code: 'InvalidAuthenticationToken' } }), {
        status: 401,
      })
    }
    return new Response(null, { status: 202 })
  }) as unknown as typeof globalThis.fetch
  const request = createGraphRequest({
    tokens: tokens(),
    fetch,
    clock,
    requestTimeoutMs: 30_000,
    reachability: createGraphReachability({ clock, log: silentLogger }),
  })
  const exchange = await request(
    'https://graph.example/v1.0/me/sendMail',
    { method: 'POST' },
    new AbortController().signal,
  )
  // On the wall clock the whole deadline had passed: token_refused_late, a row sent later.
  expect('res' in exchange ? exchange.res.status : exchange.failed).toBe(202)
  expect(calls).toBe(2)
})

/** A token source asking a fake Entra that answers each request with the next of `answers`. */
function entra(clock: Clock, answers: (() => Response)[]) {
  const asked = { n: 0 }
  const fetch = (async () => answers[asked.n++]!()) as unknown as typeof globalThis.fetch
  const source = createTokenSource({
    fetch,
    clock,
    log: silentLogger,
    tokenUrl: 'https://login.example/tenant/oauth2/v2.0/token',
    clientId: 'client',
    scope: 'https://graph.example/.default',
    credential: secretCredential('secret'),
  })
  return { asked, source }
}
const entraDown = () => new Response('{"error":"server_error"}', { status: 500 })
const token = (expiresIn: number) => () =>
  new Response(JSON.stringify({ access_token: `tok-${expiresIn}`, expires_in: expiresIn }), {
    status: 200,
  })

test('a wall clock stepped back does not stretch the token back-off after Entra failed', async () => {
  const { c, clock } = handClock()
  const { asked, source } = entra(clock, [entraDown, token(3600)])
  await expect(source.getToken()).rejects.toThrow()
  const waitMs = source.retryInMs()
  expect(waitMs).toBeGreaterThan(0)
  c.wall -= 3_600_000
  expect(source.retryInMs()).toBe(waitMs)
  // Its back-off passed: Entra is asked again, not an hour later.
  c.mono += waitMs
  expect(await source.getToken()).toBe('tok-3600')
  expect(asked.n).toBe(2)
})

test('a wall clock stepped back does not keep handing out a token past its lifetime', async () => {
  const { c, clock } = handClock()
  const { asked, source } = entra(clock, [token(600), token(3600)])
  expect(await source.getToken()).toBe('tok-600')
  // A 600 s token is handed out for 300 s; 301 s on, with the wall clock stepped back an hour.
  c.wall -= 3_600_000
  c.mono += 301_000
  expect(await source.getToken()).toBe('tok-3600')
  expect(asked.n).toBe(2)
})
