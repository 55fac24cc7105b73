// The Graph sender and token source against the strict fake Entra + Graph over loopback HTTP.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { ClientAssertion, CryptoProvider } from '@azure/msal-node'
import { SignJWT } from 'jose'
import type { Clock } from '../../src/clock.ts'
import type { GraphConfig } from '../../src/config/graph-settings.ts'
import { loadConfig } from '../../src/config.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import type { OutboundMail } from '../../src/outbox/sender.ts'
import {
  type AssertionAlgorithm,
  CLIENT_ASSERTION_TYPE,
  certificateCredential,
  type GraphCredential,
  secretCredential,
} from '../../src/transport/graph-credential.ts'
import { DEFAULT_THROTTLE_MS } from '../../src/transport/graph-outcome.ts'
import { createGraphSender } from '../../src/transport/graph-sender.ts'
import { createTokenSource } from '../../src/transport/graph-token.ts'
import { GraphAuthError } from '../../src/transport/graph-token-error.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { graphScopeFor, tokenUrlFor } from '../../src/transport/token-endpoint.ts'
import type { TokenSource } from '../../src/transport/token-source.ts'
import type { SetTimer } from '../../src/transport/unref-timer.ts'
import { createTransport } from '../../src/transport-wiring.ts'
import { type BoundedLatch, boundedLatches } from '../support/bounded-latches.ts'
import { closedPort } from '../support/closed-port.ts'
import {
  type FakeGraph,
  type FakeGraphOptions,
  generateTestCertificate,
  graphConfigFor,
  graphEnvFor,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const FROM = 'noreply@contoso.com'
let cert: TestCertificate
let unregistered: TestCertificate

beforeAll(async () => {
  ;[cert, unregistered] = await Promise.all([generateTestCertificate(), generateTestCertificate()])
})

class ManualClock implements Clock {
  constructor(private t = Date.now()) {}
  /** setTimer's timers, each run by the advance that reaches its time. */
  private timers = new Set<{ at: number; fn: () => void }>()
  now = () => this.t
  sleep = async () => {}
  setTimer: SetTimer = (ms, fn) => {
    const timer = { at: this.t + ms, fn }
    this.timers.add(timer)
    return () => this.timers.delete(timer)
  }
  /** Moves time without running the timers it reaches (a busy event loop runs them late). */
  step(ms: number) {
    this.t += ms
  }
  advance(ms: number) {
    this.t += ms
    for (const timer of [...this.timers].sort((a, b) => a.at - b.at)) {
      if (timer.at > this.t || !this.timers.delete(timer)) continue
      timer.fn()
    }
  }
  armed = () => this.timers.size
}

let fakes: FakeGraph[] = []
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.stop()))
  fakes = []
})

interface Setup {
  fake: FakeGraph
  clock: ManualClock
  tokens: TokenSource
  sender: ReturnType<typeof createGraphSender>
  /**
   * Another sender on the same token source (one process's), whose requests end `requestTimeoutMs`
   * after they start: a deadline short enough for a test to wait out, kept for the sends meant to
   * meet it. One that must be answered (a token, a send) goes with the setup's own, which a starved
   * machine does not miss: a loopback exchange there can take longer than 100 ms.
   */
  within(requestTimeoutMs: number): ReturnType<typeof createGraphSender>
  logLines: string[]
}

async function setup(
  o: {
    fake?: FakeGraphOptions
    algorithm?: AssertionAlgorithm
    credential?: (now: number) => GraphCredential
    config?: Partial<GraphConfig>
    /** Stands between the sender and the fake (e.g. to drop connections to Entra). */
    fetch?: typeof fetch
    tokenRequestTimeoutMs?: number
  } = {},
): Promise<Setup> {
  const clock = new ManualClock()
  const fake = await startFakeGraph({
    certificates: [cert.certPem],
    concurrencyLimit: 1000,
    now: clock.now,
    ...o.fake,
  })
  fakes.push(fake)
  const logLines: string[] = []
  const log = createLogger('debug', (l) => logLines.push(l))
  const credential =
    o.credential?.(clock.now()) ??
    certificateCredential({
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      algorithm: o.algorithm ?? 'PS256',
      now: clock.now(),
    })
  const config = graphConfigFor(fake, {
    assertionAlgorithm: o.algorithm ?? 'PS256',
    ...o.config,
  })
  const tokens = createTokenSource({
    fetch: o.fetch ?? fetch,
    clock,
    log,
    tokenUrl: tokenUrlFor(config.authorityUrl, config.tenantId),
    clientId: config.clientId,
    scope: graphScopeFor(config.apiUrl),
    credential,
    ...(o.tokenRequestTimeoutMs ? { requestTimeoutMs: o.tokenRequestTimeoutMs } : {}),
  })
  const within = (requestTimeoutMs: number) =>
    createGraphSender({
      config: { ...config, requestTimeoutMs },
      mailFrom: FROM,
      tokens,
      fetch: o.fetch ?? fetch,
      clock,
      log,
    })
  const sender = within(config.requestTimeoutMs)
  return { fake, clock, tokens, sender, within, logLines }
}

let nextId = 1
function mail(over: Partial<OutboundMail> = {}): OutboundMail {
  return {
    outboxId: String(nextId++),
    tenant: 't1',
    attempt: 1,
    correlationId: 'corr-1',
    from: { address: FROM },
    to: [{ address: 'ann@contoso.com', name: 'Ann' }],
    cc: [],
    bcc: [],
    replyTo: [],
    subject: 'Your inquiry',
    text: 'Thanks, we will reply soon.',
    html: null,
    importance: null,
    headers: {},
    attachments: [],
    ...over,
  }
}

const live = () => new AbortController().signal

/**
 * Polls a condition with a bound: waits on an effect without guessing a sleep length. The bound
 * (20 s, under the test's 30 s) only costs time on failure; a starved machine can take seconds.
 */
/** A request a test holds: let go within one `until` (20 s) of its hold; past it, by name. */
const HELD_MS = 25_000

async function until(cond: () => boolean | Promise<boolean>, what: string) {
  const deadline = performance.now() + 20_000
  for (;;) {
    if (await cond()) return
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(2)
  }
}

describe('token source', () => {
  test('many concurrent sends share one token request', async () => {
    const s = await setup()
    // A little latency so the requests overlap on the fake and the overlap is measurable.
    s.fake.setFaults({ latencyMs: 20 })
    const outcomes = await Promise.all(
      Array.from({ length: 25 }, () => s.sender.send(mail(), live())),
    )
    expect(outcomes.every((o) => o.kind === 'sent')).toBe(true)
    expect(s.fake.tokenRequests).toHaveLength(1)
    expect(s.fake.tokenRequests[0]).toMatchObject({
      ok: true,
      alg: 'PS256',
      thumbprintHeader: 'x5t#S256',
    })
    expect(s.fake.accepted).toHaveLength(25)
    expect(s.fake.maxConcurrent).toBeGreaterThan(1)
  })

  test('the token is reused until 5 minutes before expiry', async () => {
    const s = await setup()
    const first = await s.tokens.getToken()
    s.clock.advance((3599 - 301) * 1000)
    expect(await s.tokens.getToken()).toBe(first)
    s.clock.advance(2000)
    expect(await s.tokens.getToken()).not.toBe(first)
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.tokens.refreshCount()).toBe(2)
  })

  test('a token shorter-lived than 10 minutes is reused for half its life', async () => {
    // Five minutes off a 4-minute token would leave nothing: every send would ask Entra.
    const s = await setup({ fake: { tokenLifetimeSeconds: 240 } })
    const first = await s.tokens.getToken()
    s.clock.advance(119_000)
    expect(await s.tokens.getToken()).toBe(first)
    s.clock.advance(2_000)
    expect(await s.tokens.getToken()).not.toBe(first)
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('two callers racing a refresh cause one request and get the same token', async () => {
    const s = await setup()
    const first = await s.tokens.getToken()
    s.clock.advance(3600_000)
    const [a, b] = await Promise.all([s.tokens.getToken(), s.tokens.getToken()])
    expect(a).toBe(b)
    expect(a).not.toBe(first)
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('refresh_in starts a background refresh while the cached token keeps serving', async () => {
    const s = await setup({ fake: { refreshInSeconds: 1800 } })
    const first = await s.tokens.getToken()
    s.clock.advance(1801_000)
    expect(await s.tokens.getToken()).toBe(first)
    await until(async () => (await s.tokens.getToken()) !== first, 'the refreshed token')
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('without refresh_in (Entra’s usual answer) a background refresh begins 5 minutes before the cached token’s use ends: a steady sender never waits for Entra', async () => {
    const s = await setup()
    const first = await s.tokens.getToken()
    // Its use ends at 3599 - 300 s; from 300 s before that, a send starts the refresh and goes on
    // with the cached token.
    s.clock.advance(2998_000)
    expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(1)
    s.clock.advance(2_000)
    expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(2)
    await until(async () => (await s.tokens.getToken()) !== first, 'the refreshed token')
    // The new token serves past the first's end without another request.
    s.clock.advance(300_000)
    expect(await s.tokens.getToken()).not.toBe(first)
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('kept fresh, an idle token source (no send at all) refreshes ahead on its timer: one request per token life, none while a send began it, none once stopped', async () => {
    const clock = new ManualClock()
    const fake = await startFakeGraph({ certificates: [cert.certPem], now: clock.now })
    fakes.push(fake)
    const config = baseConfig(fake)
    const tokens = createTokenSource({
      fetch,
      clock,
      log: createLogger('error', () => {}),
      tokenUrl: tokenUrlFor(config.authorityUrl, config.tenantId),
      clientId: config.clientId,
      scope: graphScopeFor(config.apiUrl),
      credential: certificateCredential({
        certPem: cert.certPem,
        keyPem: cert.keyPem,
        algorithm: 'PS256',
        now: clock.now(),
      }),
      setTimer: clock.setTimer,
    })
    const stop = tokens.keepFresh()
    // Nothing cached yet: no timer (the start's warm-up asks, as here).
    expect(clock.armed()).toBe(0)
    const first = await tokens.getToken()
    // Entra's usual 3599 s: refreshed ahead from 3000 s on (5 minutes before its use ends at 3299 s).
    clock.advance(2999_000)
    expect(fake.tokenRequests).toHaveLength(1)
    clock.advance(1_000)
    // The timer begins the request at once (none in flight: nothing to wait for).
    await until(() => tokens.endsOrSlows() === null, 'the timer’s refresh')
    expect(fake.tokenRequests).toHaveLength(2)
    expect(await tokens.getToken()).not.toBe(first)
    // Idle for 10 hours: one request per 50 minutes of use, each at its token's refresh time.
    for (let minute = 0; minute < 600; minute++) {
      clock.advance(60_000)
      // Entra answers within the minute: each request ends before the clock moves on.
      await until(() => tokens.endsOrSlows() === null, 'the request’s end')
    }
    expect(clock.armed()).toBe(1)
    expect(fake.tokenRequests).toHaveLength(2 + 12)
    // A send begins the refresh before the timer runs: the timer, run while it is in flight, asks nothing more.
    const asked = fake.tokenRequests.length
    clock.step(3000_000)
    fake.setFaults({ latencyMs: 50 })
    expect(await tokens.getToken()).toBeString()
    expect(tokens.endsOrSlows()).not.toBeNull()
    clock.advance(0)
    await until(() => tokens.endsOrSlows() === null, 'the send’s refresh')
    expect(fake.tokenRequests).toHaveLength(asked + 1)
    expect(clock.armed()).toBe(1)
    // Stopped: no timer left, and none armed by a later token.
    stop()
    expect(clock.armed()).toBe(0)
    clock.advance(3600_000)
    await tokens.getToken()
    expect(clock.armed()).toBe(0)
  })

  test('kept fresh, a worker with no sends meets a refusal before its cached token’s use ends: readiness and the registry say it, Entra asked again only past the refusal’s minute', async () => {
    const clock = new ManualClock()
    const fake = await startFakeGraph({ certificates: [cert.certPem], now: clock.now })
    fakes.push(fake)
    const refreshes: string[] = []
    let refusalChanges = 0
    const transport = createGraphTransport(
      { ...baseConfig(fake), certificate: cert.certPem, privateKey: cert.keyPem },
      FROM,
      {
        fetch,
        clock,
        log: createLogger('error', () => {}),
        onTokenRefresh: (outcome, code) => refreshes.push(`${outcome} ${code ?? ''}`.trim()),
        setTimer: clock.setTimer,
      },
    )
    transport.onCredentialRefusalChanged(() => refusalChanges++)
    const stop = transport.keepTokenFresh()
    transport.warmUp()
    await until(() => refreshes.length === 1, 'the warm-up token')
    // The credential is revoked in Entra; no row is due for the rest of the hour.
    const refused = { status: 401, error: 'invalid_client', aadsts: 700027 }
    fake.setFaults({ token: Array.from({ length: 10 }, () => refused) })
    clock.advance(3000_000)
    await until(() => transport.tokens.endsOrSlows() === null, 'the refused refresh ahead')
    expect(refreshes).toEqual(['success', 'failure AADSTS700027'])
    const refusal =
      'graph token refused: AADSTS700027: the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration (fix the app registration or credential)'
    // 299 s before the mail would stop: a warning (readiness), the registry's note, nothing blocked.
    expect(transport.problem()).toBeNull()
    expect(transport.warning()).toBe(
      `${refusal}; sends go on with the cached token until ${new Date(clock.now() + 299_000).toISOString()}`,
    )
    expect(refusalChanges).toBe(1)
    expect(transport.credentialRefusal()).toEqual({
      code: 'AADSTS700027',
      forMs: 0,
      servesForMs: 299_000,
    })
    expect(transport.blockedForMs()).toBe(0)
    // The refusal's minute holds the timer too: asked again at 60 s, not before.
    clock.advance(59_000)
    expect(fake.tokenRequests).toHaveLength(2)
    clock.advance(1_000)
    await until(() => transport.tokens.endsOrSlows() === null, 'the refusal asked again')
    expect(fake.tokenRequests).toHaveLength(3)
    expect(refreshes).toEqual(['success', 'failure AADSTS700027', 'failure AADSTS700027'])
    stop()
  })

  test('Graph’s 401 dropping the cached token tells the registry’s note only while a refusal stands: once per drop, not for a 401 with none, nor for a token already dropped', async () => {
    const clock = new ManualClock()
    const fake = await startFakeGraph({ certificates: [cert.certPem], now: clock.now })
    fakes.push(fake)
    let refusalChanges = 0
    const transport = createGraphTransport(
      { ...baseConfig(fake), certificate: cert.certPem, privateKey: cert.keyPem },
      FROM,
      { fetch, clock, log: createLogger('error', () => {}) },
    )
    transport.onCredentialRefusalChanged(() => refusalChanges++)
    // No refusal: the dropped token's worker fetches another, which tells its own answer.
    const first = await transport.tokens.getToken()
    expect(transport.tokens.invalidate(first)).toBe(true)
    expect(refusalChanges).toBe(0)
    const second = await transport.tokens.getToken()
    expect(second).not.toBe(first)
    // Refused ahead of the token's end: the cached token serves on.
    const refused = { status: 401, error: 'invalid_client', aadsts: 700027 }
    fake.setFaults({ token: Array.from({ length: 10 }, () => refused) })
    clock.advance(3000_000)
    expect(await transport.tokens.getToken()).toBe(second)
    await until(() => transport.tokens.endsOrSlows() === null, 'the refused refresh ahead')
    expect(refusalChanges).toBe(1)
    expect(transport.credentialRefusal()?.servesForMs).toBeGreaterThan(0)
    // Graph refuses it: no token serves from now on, and the note is told so.
    expect(transport.tokens.invalidate(second)).toBe(true)
    expect(transport.credentialRefusal()).toEqual({
      code: 'AADSTS700027',
      forMs: 0,
      servesForMs: 0,
    })
    expect(refusalChanges).toBe(2)
    // Another send's 401 to the same token: already dropped, nothing more to tell.
    expect(transport.tokens.invalidate(second)).toBe(true)
    expect(refusalChanges).toBe(2)
  })

  test('only Graph keeps a token fresh on a timer: file and discard have nothing to refresh (serve arms it for a worker, never for --role api)', async () => {
    const fake = await startFakeGraph({ certificates: [cert.certPem] })
    fakes.push(fake)
    const env = { ...graphEnvFor(fake), MAIL_FROM: FROM, GRAPH_CLIENT_SECRET: 'right' }
    const graph = createTransport(loadConfig(env, { requireDatabase: false }), silentLogger)
    expect(graph.keepFresh).toBeFunction()
    graph.keepFresh?.()()
    for (const other of [{ MAIL_TRANSPORT: 'discard' }, { MAIL_TRANSPORT: 'file' }]) {
      const t = createTransport(
        loadConfig({ ...env, ...other }, { requireDatabase: false }),
        silentLogger,
      )
      expect(t.keepFresh).toBeUndefined()
    }
  })

  test('a caller giving up does not cancel the refresh others wait for', async () => {
    const s = await setup()
    const gate = boundedLatches(HELD_MS).make('the token request let go once a caller gave up')
    const gated = createTokenSource({
      fetch: (async (input: string | URL | Request, init?: RequestInit) => {
        await gate.wait()
        return fetch(input, init)
      }) as typeof fetch,
      clock: s.clock,
      log: createLogger('error', () => {}),
      tokenUrl: tokenUrlFor(s.fake.authorityUrl, s.fake.tenantId),
      clientId: s.fake.clientId,
      scope: graphScopeFor(s.fake.apiUrl),
      credential: certificateCredential({
        certPem: cert.certPem,
        keyPem: cert.keyPem,
        algorithm: 'PS256',
        now: s.clock.now(),
      }),
    })
    const impatient = new AbortController()
    const a = gated.getToken(impatient.signal)
    const b = gated.getToken()
    impatient.abort(new Error('gave up'))
    await expect(a).rejects.toThrow('gave up')
    gate.resolve()
    expect(await b).toStartWith('fake-')
    expect(s.fake.tokenRequests).toHaveLength(1)
  })

  test('a caller that has already given up (its signal aborted) begins no token request: none cached, or the cached one due for its refresh', async () => {
    const s = await setup({ fake: { refreshInSeconds: 1800 } })
    const gaveUp = new AbortController()
    gaveUp.abort(new Error('gave up'))
    await expect(s.tokens.getToken(gaveUp.signal)).rejects.toThrow('gave up')
    // Counted when asked (refreshCount), not when the fake hears it: a request begun and left
    // behind would reach the fake after this line.
    expect(s.tokens.refreshCount()).toBe(0)
    const first = await s.tokens.getToken()
    s.clock.advance(1801_000)
    // Still serving, the cached token is handed out; its background refresh waits for a caller
    // that has not given up.
    expect(await s.tokens.getToken(gaveUp.signal)).toBe(first)
    expect(s.tokens.refreshCount()).toBe(1)
    expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(2)
  })

  test('ready() once a stop has begun asks Entra nothing (the row goes back unstarted); before it, ready() asks once', async () => {
    const s = await setup()
    const stopping = new AbortController()
    stopping.abort(new Error('stopping'))
    await s.sender.ready?.(stopping.signal)
    // Counted when asked (refreshCount), not when the fake hears it: a request begun and left
    // behind by the stop would reach the fake after this line.
    expect(s.tokens.refreshCount()).toBe(0)
    await s.sender.ready?.(live())
    expect(s.tokens.refreshCount()).toBe(1)
    expect(s.fake.tokenRequests).toHaveLength(1)
  })

  test('expires_in sent as a string is understood', async () => {
    const s = await setup({ fake: { expiresInAsString: true } })
    const first = await s.tokens.getToken()
    // Short of the refresh ahead of its use's end (3599 - 600 s).
    s.clock.advance(2900_000)
    expect(await s.tokens.getToken()).toBe(first)
    expect(s.fake.tokenRequests).toHaveLength(1)
  })

  test('RS256 with x5t is accepted too', async () => {
    const s = await setup({ algorithm: 'RS256' })
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests[0]).toMatchObject({
      ok: true,
      alg: 'RS256',
      thumbprintHeader: 'x5t',
    })
  })

  test('a client secret works, and a wrong one keeps AADSTS7000215', async () => {
    const ok = await setup({
      fake: { clientSecret: 'right' },
      credential: () => secretCredential('right'),
    })
    expect((await ok.sender.send(mail(), live())).kind).toBe('sent')
    const bad = await setup({
      fake: { clientSecret: 'right' },
      credential: () => secretCredential('wrong'),
    })
    expect(await bad.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      throttled: true,
      code: 'AADSTS7000215',
      httpStatus: 401,
    })
  })

  test('an unregistered certificate: the row waits uncounted with AADSTS700027, Entra asked once a minute', async () => {
    const s = await setup({
      credential: (now) =>
        certificateCredential({
          certPem: unregistered.certPem,
          keyPem: unregistered.keyPem,
          algorithm: 'PS256',
          now,
        }),
    })
    const outcome = await s.sender.send(mail(), live())
    // The credential's problem, not the row's: a throttle (no attempt counted) until Entra is asked again.
    expect(outcome).toMatchObject({
      kind: 'retry',
      throttled: true,
      afterMs: 60_000,
      ambiguous: false,
      pausesMailbox: false,
      code: 'AADSTS700027',
      httpStatus: 401,
    })
    expect(outcome.kind === 'retry' && outcome.message).toMatch(
      /^invalid_client: AADSTS700027: The certificate/,
    )
    expect(s.tokens.lastError()).toMatchObject({ code: 'AADSTS700027', permanent: true })
    expect(s.tokens.refusedForMs()).toBe(60_000)
    s.clock.advance(20_000)
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'AADSTS700027',
      afterMs: 40_000,
    })
    expect(s.fake.tokenRequests).toHaveLength(1)
    s.clock.advance(40_000)
    expect(s.tokens.refusedForMs()).toBe(0)
    expect((await s.sender.send(mail(), live())).kind).toBe('retry')
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.fake.accepted).toHaveLength(0)
  })

  test('a refused credential blocks sends until Entra is asked again; past that, a readiness probe asks, so a fixed credential shows without mail', async () => {
    const clock = new ManualClock()
    const fake = await startFakeGraph({ certificates: [cert.certPem], now: clock.now })
    fakes.push(fake)
    fake.setFaults({ token: [{ status: 401, error: 'invalid_client', aadsts: 700027 }] })
    const transport = createGraphTransport(
      { ...baseConfig(fake), certificate: cert.certPem, privateKey: cert.keyPem },
      FROM,
      { fetch, clock, log: createLogger('error', () => {}) },
    )
    transport.warmUp()
    await until(() => transport.problem() !== null, 'the refusal')
    expect(transport.problem()).toBe(
      'graph token refused: AADSTS700027: the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration (fix the app registration or credential)',
    )
    expect(transport.blockedForMs()).toBe(60_000)
    expect(fake.tokenRequests).toHaveLength(1)
    clock.advance(60_000)
    expect(transport.blockedForMs()).toBe(0)
    expect(transport.problem()).not.toBeNull() // this probe asks Entra, which now accepts
    await until(() => transport.problem() === null, 'the accepted credential')
    expect(fake.tokenRequests).toHaveLength(2)
  })

  test('a credential refused at a background refresh (refresh_in) blocks no claims while the cached token serves; once that token is past use it does', async () => {
    const clock = new ManualClock()
    // Tokens of 3599 s, refreshed from 1800 s on, handed out until 3299 s (5 minutes before expiry).
    const fake = await startFakeGraph({
      certificates: [cert.certPem],
      now: clock.now,
      refreshInSeconds: 1800,
    })
    fakes.push(fake)
    const refreshes: string[] = []
    const logLines: string[] = []
    const transport = createGraphTransport(
      { ...baseConfig(fake), certificate: cert.certPem, privateKey: cert.keyPem },
      FROM,
      {
        fetch,
        clock,
        log: createLogger('debug', (l) => logLines.push(l)),
        onTokenRefresh: (outcome, code) => refreshes.push(`${outcome} ${code ?? ''}`.trim()),
      },
    )
    expect((await transport.sender.send(mail(), live())).kind).toBe('sent')
    // The credential is revoked in Entra: the proactive refresh the next send starts is refused.
    const refused = { status: 401, error: 'invalid_client', aadsts: 700027 }
    fake.setFaults({ token: Array.from({ length: 10 }, () => refused) })
    clock.advance(1801_000)
    expect((await transport.sender.send(mail(), live())).kind).toBe('sent')
    await until(() => refreshes.length === 2, 'the refused refresh')
    // Reported as before: the metric's code, the log line; readiness as a warning, not a problem,
    // while the cached token serves (a 503 would take the machine's API out of rotation).
    expect(refreshes).toEqual(['success', 'failure AADSTS700027'])
    expect(
      logLines.some((l) => l.includes('graph token request failed') && l.includes('AADSTS700027')),
    ).toBe(true)
    const refusal =
      'graph token refused: AADSTS700027: the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration (fix the app registration or credential)'
    expect(transport.problem()).toBeNull()
    expect(transport.warning()).toBe(
      `${refusal}; sends go on with the cached token until ${new Date(clock.now() + 3299_000 - 1801_000).toISOString()}`,
    )
    // The cached token still serves: claims go on, and their sends with it.
    expect(transport.blockedForMs()).toBe(0)
    expect(transport.sender.unavailable?.()).toBeNull()
    expect((await transport.sender.send(mail(), live())).kind).toBe('sent')
    // Refused again 10 s before the token's use ends; still serving until then.
    clock.advance(3289_000 - 1801_000)
    expect((await transport.sender.send(mail(), live())).kind).toBe('sent')
    await until(() => refreshes.length === 3, 'the second refused refresh')
    expect(transport.blockedForMs()).toBe(0)
    // Past its use no row goes out with it: claims stop for the rest of the refusal's hold.
    clock.advance(10_000)
    expect(transport.blockedForMs()).toBe(50_000)
    expect(transport.problem()).toBe(refusal)
    expect(transport.warning()).toBeNull()
    expect(transport.sender.unavailable?.()).toMatchObject({
      kind: 'retry',
      code: 'AADSTS700027',
      afterMs: 50_000,
    })
    expect(await transport.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'AADSTS700027',
    })
    expect(fake.accepted).toHaveLength(4)
    expect(fake.tokenRequests).toHaveLength(3)
  })

  test('a token endpoint outage is transient: an uncounted retry, and a call past the backoff asks again', async () => {
    const s = await setup()
    s.fake.setFaults({ token: [{ status: 503, error: 'temporarily_unavailable', aadsts: 90055 }] })
    const outcome = await s.sender.send(mail(), live())
    expect(outcome).toMatchObject({
      kind: 'retry',
      code: 'AADSTS90055',
      httpStatus: 503,
      throttled: true,
      afterMs: DEFAULT_THROTTLE_MS,
    })
    s.clock.advance(1_000)
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.tokens.lastError()).toBeNull()
  })

  test('an Entra outage (500s): sends wait uncounted on one shared backoff that doubles, and a success resets it', async () => {
    const s = await setup()
    const entra500 = { status: 500, error: 'server_error', aadsts: 50000 }
    s.fake.setFaults({ token: Array.from({ length: 20 }, () => entra500) })
    // Not an attempt of the row (nothing reached Graph): an uncounted wait, no mailbox held back.
    const first = await Promise.all([1, 2, 3].map(() => s.sender.send(mail(), live())))
    for (const outcome of first) {
      expect(outcome).toMatchObject({
        kind: 'retry',
        code: 'AADSTS50000',
        httpStatus: 500,
        throttled: true,
        pausesMailbox: false,
        ambiguous: false,
        afterMs: 5_000,
      })
    }
    expect(s.fake.tokenRequests).toHaveLength(1)
    // Within the backoff no send asks Entra; each later failure doubles it.
    for (const backoffMs of [1_000, 2_000, 4_000, 8_000]) {
      expect(s.tokens.retryInMs()).toBe(backoffMs)
      const asked = s.fake.tokenRequests.length
      s.clock.advance(backoffMs - 1)
      expect(await s.sender.send(mail(), live())).toMatchObject({ throttled: true })
      expect(s.fake.tokenRequests).toHaveLength(asked)
      s.clock.advance(1)
      expect(await s.sender.send(mail(), live())).toMatchObject({ throttled: true })
      expect(s.fake.tokenRequests).toHaveLength(asked + 1)
    }
    expect(s.tokens.retryInMs()).toBe(16_000)
    s.fake.setFaults({})
    s.clock.advance(16_000)
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.tokens.retryInMs()).toBe(0)
    // A new outage starts again from the first delay.
    s.fake.setFaults({ token: [entra500] })
    s.fake.revokeTokens('expired')
    expect(await s.sender.send(mail(), live())).toMatchObject({ throttled: true })
    expect(s.tokens.retryInMs()).toBe(1_000)
  })

  test('within the backoff, unavailable() answers what a send would, without asking Entra; a cached token still serves', async () => {
    const s = await setup({ fake: { refreshInSeconds: 1800 } })
    expect(s.sender.unavailable?.()).toBeNull()
    // A background refresh that fails leaves the cached token serving: sends can go.
    await s.tokens.getToken()
    s.fake.setFaults({ token: [{ status: 500, error: 'server_error', aadsts: 50000 }] })
    s.clock.advance(1801_000)
    await s.tokens.getToken()
    await until(() => s.tokens.lastError() !== null, 'the failed refresh')
    expect(s.sender.unavailable?.()).toBeNull()
    // No usable token and within the backoff: the same uncounted wait a send gets, no request.
    s.fake.revokeTokens('expired')
    s.clock.advance(3600_000)
    s.fake.setFaults({ token: [{ status: 500, error: 'server_error', aadsts: 50000 }] })
    const sent = await s.sender.send(mail(), live())
    const asked = s.fake.tokenRequests.length
    expect(s.sender.unavailable?.()).toEqual(sent)
    expect(sent).toMatchObject({ kind: 'retry', code: 'AADSTS50000', throttled: true })
    expect(s.fake.tokenRequests).toHaveLength(asked)
    // Past the backoff a send asks Entra again: nothing to answer without it.
    s.clock.advance(s.tokens.retryInMs())
    expect(s.sender.unavailable?.()).toBeNull()
  })

  test('the backoff is capped at a few minutes', async () => {
    const s = await setup()
    s.fake.setFaults({
      token: Array.from({ length: 30 }, () => ({
        status: 500,
        error: 'server_error',
        aadsts: 50000,
      })),
    })
    for (let i = 0; i < 20; i++) {
      await s.sender.send(mail(), live())
      s.clock.advance(s.tokens.retryInMs())
    }
    await s.sender.send(mail(), live())
    expect(s.tokens.retryInMs()).toBe(300_000)
  })

  test('Entra unreachable (connections dropped): an uncounted token_network wait, Entra not asked again within the backoff', async () => {
    let down = true
    let asked = 0
    const dropping = ((input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
      if (String(input).includes('/oauth2/v2.0/token')) {
        asked++
        if (down)
          return Promise.reject(new TypeError('The socket connection was closed unexpectedly'))
      }
      return fetch(input, init)
    }) as typeof fetch
    const s = await setup({ fetch: dropping })
    const outcomes = await Promise.all([1, 2, 3].map(() => s.sender.send(mail(), live())))
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({
        kind: 'retry',
        code: 'token_network',
        throttled: true,
        pausesMailbox: false,
        ambiguous: false,
      })
    }
    expect(await s.sender.send(mail(), live())).toMatchObject({
      code: 'token_network',
      throttled: true,
    })
    expect(asked).toBe(1)
    down = false
    s.clock.advance(1_000)
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(asked).toBe(2)
  })

  test('a hung token request: the sends waiting on it give up uncounted (token_timeout), sharing that one request', async () => {
    const s = await setup({ tokenRequestTimeoutMs: 300 })
    s.fake.setFaults({ token: ['hang', 'hang'] })
    const short = s.within(100)
    const outcomes = await Promise.all([1, 2, 3].map(() => short.send(mail(), live())))
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({
        kind: 'retry',
        code: 'token_timeout',
        throttled: true,
        pausesMailbox: false,
        ambiguous: false,
      })
    }
    // Counted when asked: a stalled machine can end the sends' deadline before the request reaches the fake.
    expect(s.tokens.refreshCount()).toBe(1)
    // The shared request times out in turn: the next sends wait on the backoff, asking nothing.
    await until(() => s.tokens.lastError()?.code === 'token_timeout', 'the timed-out token request')
    expect(await short.send(mail(), live())).toMatchObject({
      code: 'token_timeout',
      throttled: true,
    })
    expect(s.tokens.refreshCount()).toBe(1)
    s.clock.advance(1_000)
    s.fake.setFaults({})
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.tokens.refreshCount()).toBe(2)
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('Entra throttling (429 with Retry-After): the row waits uncounted, and Entra is not asked again before Retry-After', async () => {
    const s = await setup()
    s.fake.setFaults({
      token: [{ status: 429, error: 'temporarily_unavailable', aadsts: 50196, retryAfter: '120' }],
    })
    // Not the row's fault: a throttle that burns no attempt and holds back no mailbox.
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'AADSTS50196',
      httpStatus: 429,
      throttled: true,
      afterMs: 120_000,
      pausesMailbox: false,
      ambiguous: false,
    })
    s.clock.advance(30_000)
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'AADSTS50196',
      throttled: true,
      afterMs: 90_000,
    })
    expect(s.fake.tokenRequests).toHaveLength(1)
    s.clock.advance(90_000)
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('a background refresh Entra throttles (429 with Retry-After) is not asked again before Retry-After', async () => {
    const s = await setup({ fake: { refreshInSeconds: 1800 } })
    const first = await s.tokens.getToken()
    s.fake.setFaults({
      token: [{ status: 429, error: 'temporarily_unavailable', aadsts: 50196, retryAfter: '120' }],
    })
    s.clock.advance(1801_000)
    // The cached token keeps serving; its background refresh meets the throttle.
    expect(await s.tokens.getToken()).toBe(first)
    await until(() => s.tokens.throttledForMs() > 0, 'the throttled refresh')
    expect(s.fake.tokenRequests).toHaveLength(2)
    // Within Retry-After: sends keep the cached token and ask Entra nothing (counted as asked).
    s.clock.advance(60_000)
    for (let i = 0; i < 3; i++) expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(2)
    s.clock.advance(60_000)
    expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(3)
    await until(async () => (await s.tokens.getToken()) !== first, 'the refreshed token')
  })

  test('a background refresh that fails without Retry-After (a 500) is not asked again at every send', async () => {
    const s = await setup({ fake: { refreshInSeconds: 1800 } })
    const first = await s.tokens.getToken()
    s.fake.setFaults({ token: [{ status: 500, error: 'server_error', aadsts: 50000 }] })
    s.clock.advance(1801_000)
    expect(await s.tokens.getToken()).toBe(first)
    await until(() => s.tokens.lastError() !== null, 'the failed refresh')
    // Sends go on with the cached token; Entra is asked again only after a while: 30 s, longer
    // than the shared backoff of one failure (1 s), which alone would ask again at the next send.
    s.clock.advance(5_000)
    for (let i = 0; i < 5; i++) expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(2)
    s.clock.advance(25_000)
    expect(await s.tokens.getToken()).toBe(first)
    expect(s.tokens.refreshCount()).toBe(3)
    await until(async () => (await s.tokens.getToken()) !== first, 'the refreshed token')
  })

  test("Graph's 401 drops the cached token once: a stale token's 401 keeps the newer one, and a 401 to the fresh one asks Entra again only after a minute", async () => {
    const s = await setup()
    const first = await s.tokens.getToken()
    expect(s.tokens.invalidate(first)).toBe(true)
    const second = await s.tokens.getToken()
    expect(second).not.toBe(first)
    // Another request's 401 to the token the first 401 already replaced: the newer one stays.
    expect(s.tokens.invalidate(first)).toBe(true)
    expect(await s.tokens.getToken()).toBe(second)
    // Graph refuses the fresh token too: another would not help (Entra's loop detection counts them).
    expect(s.tokens.invalidate(second)).toBe(false)
    expect(await s.tokens.getToken()).toBe(second)
    s.clock.advance(60_000)
    expect(s.tokens.invalidate(second)).toBe(true)
    expect(await s.tokens.getToken()).not.toBe(second)
    expect(s.fake.tokenRequests).toHaveLength(3)
  })

  test('getToken errors are GraphAuthError with the AADSTS code', async () => {
    const s = await setup()
    s.fake.setFaults({ token: [{ status: 400, error: 'invalid_scope', aadsts: 70011 }] })
    const e = await s.tokens.getToken().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(GraphAuthError)
    expect(e).toMatchObject({ code: 'AADSTS70011', permanent: true, httpStatus: 400 })
  })
})

describe('sendMail outcomes', () => {
  test('a sent message carries X-Outbox-Id and the OutboxId property, and nothing personal is logged', async () => {
    const s = await setup()
    const m = mail({ cc: [{ address: 'bob@contoso.com' }], html: '<p>Hi</p>' })
    const outcome = await s.sender.send(m, live())
    expect(outcome).toMatchObject({ kind: 'sent', httpStatus: 202 })
    expect(outcome.requestId).toBe(s.fake.accepted[0]!.requestId)
    expect(s.fake.accepted[0]).toMatchObject({
      mailbox: FROM,
      outboxId: m.outboxId,
      propertyValue: m.outboxId,
    })
    expect(s.logLines.join('\n')).not.toContain('@')
    expect(s.logLines.join('\n')).not.toContain('Your inquiry')
  })

  test('401 → one token refresh and the same request again', async () => {
    const s = await setup()
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    s.fake.revokeTokens('expired')
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.fake.accepted).toHaveLength(2)
  })

  test('a revoked token met by many sends of two databases at once: one fresh token between them, every mail sent once, no outage', async () => {
    // Half the sends reach Graph only once Entra has issued the fresh token: they carry the
    // revoked one to Graph after the fresh one is cached, and their 401 must not drop it (nor
    // count as a second refusal of a fresh token: an outage).
    let sent = 0
    let fake: FakeGraph | undefined
    const late: typeof fetch = Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        if (String(input).endsWith('/sendMail') && sent++ >= 7) {
          await until(() => (fake?.tokenRequests.length ?? 0) >= 2, 'the fresh token')
        }
        return fetch(input, init)
      },
      { preconnect: fetch.preconnect },
    )
    const s = await setup({ fetch: late })
    fake = s.fake
    const shop = s.sender.forDatabase('shop', { alone: false })
    const billing = s.sender.forDatabase('billing', { alone: false })
    expect((await shop.send(mail(), live())).kind).toBe('sent')
    s.fake.revokeTokens('expired')
    sent = 1
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? shop : billing).send(mail(), live())),
    )
    expect(outcomes.map((o) => o.kind)).toEqual(Array(12).fill('sent'))
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.fake.accepted).toHaveLength(13)
    expect(s.sender.reachability.cause()).toBeNull()
  })

  test('a 401 with too little of the deadline left goes back unsent and uncounted: no second request past the one deadline the lease margin allows', async () => {
    const g = holdingFirstRequest()
    // A deadline the wall clock never reaches in a test: the injected clock passes most of it.
    const s = await setup({ fetch: g.fetch, config: { requestTimeoutMs: 120_000 } })
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    g.hold()
    s.fake.revokeTokens('expired')
    const sending = s.sender.send(mail(), live())
    await until(() => g.signals.length === 2, 'the request after the revocation')
    // Graph answers 401 after 100 of the request's 120 s: a fresh token and a second exchange
    // would have to fit in the 20 s left.
    s.clock.advance(100_000)
    g.release()
    const outcome = await sending
    expect(outcome).toMatchObject({
      kind: 'retry',
      code: 'token_refused_late',
      httpStatus: 401,
      throttled: true,
      pausesMailbox: false,
      ambiguous: false,
      afterMs: 5_000,
    })
    expect(outcome.kind === 'retry' && outcome.message).toMatch(
      /^Graph refused the token \(HTTP 401 InvalidAuthenticationToken\) with 20 s of the request's 120 s deadline left/,
    )
    expect(g.signals).toHaveLength(2)
    expect(s.fake.tokenRequests).toHaveLength(1)
    expect(s.fake.accepted).toHaveLength(1)
    // The stale token is dropped: the row's next try fetches a fresh one and is sent at once.
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.sender.reachability.cause()).toBeNull()
  })

  test('a 401 with half the deadline left or more: the fresh token and the second request go within that same deadline', async () => {
    const g = holdingFirstRequest()
    const s = await setup({ fetch: g.fetch, config: { requestTimeoutMs: 120_000 } })
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    g.hold()
    s.fake.revokeTokens('expired')
    const sending = s.sender.send(mail(), live())
    await until(() => g.signals.length === 2, 'the request after the revocation')
    s.clock.advance(60_000)
    g.release()
    expect((await sending).kind).toBe('sent')
    expect(g.signals).toHaveLength(3)
    // Not a fresh deadline: the second exchange ends when the first's would have.
    expect(g.signals[2]).toBe(g.signals[1]!)
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.fake.accepted).toHaveLength(2)
  })

  test('a lookup whose 401 comes with too little of the deadline left waits as such a send does, uncounted', async () => {
    const g = holdingFirstRequest()
    const s = await setup({ fetch: g.fetch, config: { requestTimeoutMs: 120_000 } })
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    g.hold()
    s.fake.revokeTokens('expired')
    const looking = s.sender.lookupSentMessage(FROM, '1', live())
    await until(() => g.signals.length === 2, 'the lookup')
    s.clock.advance(100_000)
    g.release()
    expect(await looking).toMatchObject({
      unreachable: { kind: 'retry', code: 'token_refused_late', ambiguous: false },
    })
    expect(g.signals).toHaveLength(2)
    expect(s.fake.tokenRequests).toHaveLength(1)
  })

  test('401 again after the refresh is an uncounted graph_unauthorized wait (the app, not the row), not a loop', async () => {
    const s = await setup()
    const unauthorized = { status: 401, code: 'InvalidAuthenticationToken' }
    s.fake.setFaults({ sendMail: [unauthorized, unauthorized, unauthorized] })
    const outcome = await s.sender.send(mail(), live())
    expect(outcome).toMatchObject({
      kind: 'retry',
      code: 'graph_unauthorized',
      httpStatus: 401,
      throttled: true,
      pausesMailbox: false,
      ambiguous: false,
      afterMs: 5_000,
    })
    expect(outcome.kind === 'retry' && outcome.message).toMatch(
      /^Graph refuses this app's tokens \(HTTP 401 InvalidAuthenticationToken\)/,
    )
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.fake.sendMailRequests()).toBe(2)
  })

  test('sends in flight when the token is revoked cause one refresh between them', async () => {
    const s = await setup()
    await s.tokens.getToken()
    s.fake.revokeTokens('expired')
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () => s.sender.send(mail(), live())),
    )
    expect(outcomes.map((o) => o.kind)).toEqual(Array(8).fill('sent'))
    expect(s.fake.tokenRequests).toHaveLength(2)
  })

  test('Graph refusing fresh tokens too (401 whatever the token): nothing goes to Graph within the back-off, then one probe; Entra is asked again once a minute at most', async () => {
    const s = await setup()
    const unauthorized = { status: 401, code: 'InvalidAuthenticationToken' }
    s.fake.setFaults({ pickSendMail: () => unauthorized })
    for (let i = 0; i < 10; i++) {
      expect(await s.sender.send(mail(), live())).toMatchObject({
        kind: 'retry',
        code: 'graph_unauthorized',
        throttled: true,
      })
    }
    // The first token, and the one refresh the first 401 asked for; the first send's request and
    // its repeat, the nine others none (within the back-off, told so by the sender at once).
    expect(s.fake.tokenRequests).toHaveLength(2)
    expect(s.fake.sendMailRequests()).toBe(2)
    expect(s.sender.unavailable?.()).toMatchObject({ code: 'graph_unauthorized' })
    s.clock.advance(60_000)
    expect(s.sender.unavailable?.()).toBeNull()
    expect((await s.sender.send(mail(), live())).kind).toBe('retry')
    expect(s.fake.tokenRequests).toHaveLength(3)
    expect(s.fake.sendMailRequests()).toBe(4)
    s.fake.setFaults({})
    // The failed probe doubled the back-off (10 s): no request before it has passed.
    expect(await s.sender.send(mail(), live())).toMatchObject({ code: 'graph_unauthorized' })
    expect(s.fake.sendMailRequests()).toBe(4)
    s.clock.advance(10_000)
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests).toHaveLength(3)
    expect(s.sender.reachability.cause()).toBeNull()
  })

  test('a refreshed token Graph accepted and then refused (revoked again) is refreshed at once', async () => {
    const s = await setup()
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    s.fake.revokeTokens('expired')
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    s.fake.revokeTokens('invalid')
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.fake.tokenRequests).toHaveLength(3)
  })

  test('429 with Retry-After is a throttled retry', async () => {
    const s = await setup()
    s.fake.setFaults({ sendMail: [{ status: 429, code: 'ApplicationThrottled', retryAfter: '5' }] })
    const outcome = await s.sender.send(mail(), live())
    expect(outcome).toMatchObject({
      kind: 'retry',
      code: 'ApplicationThrottled',
      afterMs: 5000,
      throttled: true,
      httpStatus: 429,
    })
    expect(outcome.requestId).toMatch(/^[0-9a-f-]{36}$/)
    expect(s.fake.accepted).toHaveLength(0)
  })

  test('a throttled fraction: each request is either sent or a throttled retry', async () => {
    const s = await setup()
    s.fake.setFaults({ throttleFraction: 0.5, retryAfter: '2' })
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => s.sender.send(mail(), live())),
    )
    const throttled = outcomes.filter(
      (o) => o.kind === 'retry' && o.throttled && o.afterMs === 2000,
    )
    expect(throttled.length).toBeGreaterThan(0)
    expect(throttled.length + s.fake.accepted.length).toBe(20)
  })

  test('503 is a throttled retry; 500 leaves the backoff to the engine', async () => {
    const s = await setup()
    s.fake.setFaults({
      sendMail: [
        { status: 503, code: 'ServiceUnavailable', retryAfter: '3' },
        { status: 500, code: 'InternalServerError' },
      ],
    })
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      throttled: true,
      afterMs: 3000,
      httpStatus: 503,
    })
    const second = await s.sender.send(mail(), live())
    expect(second).toMatchObject({ kind: 'retry', code: 'InternalServerError', httpStatus: 500 })
    expect(second.kind === 'retry' && second.afterMs).toBeUndefined()
  })

  test('202 with Retry-After is sent once and never repeated', async () => {
    const s = await setup()
    s.fake.setFaults({ sendMail: ['accept_with_retry_after'] })
    expect(await s.sender.send(mail(), live())).toMatchObject({ kind: 'sent', httpStatus: 202 })
    expect(s.fake.accepted).toHaveLength(1)
  })

  test('an invalid recipient is rejected with the Graph code and no address in the message', async () => {
    const s = await setup()
    s.fake.setFaults({ sendMail: ['invalid_recipients'] })
    const outcome = await s.sender.send(mail(), live())
    expect(outcome).toMatchObject({
      kind: 'reject',
      code: 'ErrorInvalidRecipients',
      httpStatus: 400,
    })
    expect(outcome.kind === 'reject' && outcome.message).not.toContain('@')
  })

  test('a syntactically bad address is refused by the fake as ErrorInvalidRecipients', async () => {
    const s = await setup()
    expect(
      await s.sender.send(mail({ to: [{ address: 'not-an-address' }] }), live()),
    ).toMatchObject({ kind: 'reject', code: 'ErrorInvalidRecipients' })
  })

  test('403 ErrorAccessDenied (permission not consented yet) waits, uncounted', async () => {
    const s = await setup()
    s.fake.setFaults({
      sendMail: [
        {
          status: 403,
          code: 'ErrorAccessDenied',
          message: 'Access is denied. Check credentials and try again.',
        },
      ],
    })
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'ErrorAccessDenied',
      throttled: true,
      httpStatus: 403,
    })
  })

  test('unknown and disabled mailboxes reject with their Graph codes', async () => {
    const s = await setup({
      fake: { mailboxes: [FROM, 'old@contoso.com'], disabledMailboxes: ['old@contoso.com'] },
    })
    expect(
      await s.sender.send(mail({ from: { address: 'ghost@contoso.com' } }), live()),
    ).toMatchObject({ kind: 'reject', code: 'ErrorInvalidUser', httpStatus: 404 })
    expect(
      await s.sender.send(mail({ from: { address: 'old@contoso.com' } }), live()),
    ).toMatchObject({ kind: 'reject', code: 'MailboxNotEnabledForRESTAPI', httpStatus: 404 })
    // The fake records them like any other request, with what it answered.
    expect(s.fake.requests.map((q) => [q.kind, q.mailbox, q.status, q.fault])).toEqual([
      ['sendMail', 'ghost@contoso.com', 404, 'ErrorInvalidUser'],
      ['sendMail', 'old@contoso.com', 404, 'MailboxNotEnabledForRESTAPI'],
    ])
    expect(s.fake.sendMailRequests()).toBe(2)
  })

  test('MAIL_FROM unknown or not enabled (404): its send and its lookup wait, uncounted, and the refusal is logged at error once, by name, not address', async () => {
    for (const fake of [{ mailboxes: ['other@contoso.com'] }, { disabledMailboxes: [FROM] }]) {
      const s = await setup({ fake })
      const code = fake.mailboxes ? 'ErrorInvalidUser' : 'MailboxNotEnabledForRESTAPI'
      const db = s.sender.forDatabase('shop')
      for (let i = 0; i < 3; i++) {
        expect(await db.send(mail(), live())).toMatchObject({
          kind: 'retry',
          code,
          throttled: true,
          afterMs: 300_000,
          httpStatus: 404,
        })
      }
      expect(await db.lookupSentMessage(FROM, '1', live())).toMatchObject({
        throttledForMs: 300_000,
        refused: { code, httpStatus: 404 },
      })
      expect(s.sender.senderMailbox.isRefused()).toBe(true)
      const lines = s.logLines.map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(lines.filter((l) => l.level === 'error')).toEqual([
        expect.objectContaining({
          msg: 'sender mailbox refused by Graph: its rows wait',
          mailbox: 'MAIL_FROM',
          code,
          httpStatus: 404,
        }),
      ])
      // Each database's sender names its database on its lines.
      const sendLines = lines.filter((l) => l.msg === 'graph sendMail not accepted')
      expect(sendLines).toHaveLength(3)
      expect(sendLines.every((l) => l.db === 'shop')).toBe(true)
      expect(s.logLines.filter((l) => l.toLowerCase().includes(FROM))).toEqual([])
    }
  })

  test('403 ErrorAccessDenied from MAIL_FROM counts as refusing it; from a mailbox of the row’s own it does not', async () => {
    const s = await setup()
    const denied = { status: 403, code: 'ErrorAccessDenied', message: 'Access is denied.' }
    s.fake.setFaults({ sendMail: [denied] })
    await s.sender.send(mail({ from: { address: 'other@contoso.com' } }), live())
    expect(s.sender.senderMailbox.isRefused()).toBe(false)
    s.fake.setFaults({ sendMail: [denied] })
    await s.sender.send(mail(), live())
    expect(s.sender.senderMailbox.isRefused()).toBe(true)
    // A send from it accepted ends the refusal, said once.
    expect((await s.sender.send(mail(), live())).kind).toBe('sent')
    expect(s.sender.senderMailbox.isRefused()).toBe(false)
    expect(s.logLines.filter((l) => l.includes('sender mailbox sends again'))).toHaveLength(1)
  })

  test('the transport’s sender and lookup for a database name it on their lines, as every line about its rows does', async () => {
    const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: [FROM] })
    fakes.push(fake)
    const lines: string[] = []
    const config = loadConfig(
      {
        ...graphEnvFor(fake),
        MAIL_FROM: FROM,
        GRAPH_CLIENT_SECRET: 'right',
        GRAPH_MAILBOX_LOOKUP: 'true',
      },
      { requireDatabase: false },
    )
    const transport = createTransport(
      config,
      createLogger('debug', (l) => lines.push(l)),
    )
    const shop = transport.senderFor('shop')
    expect((await shop.send(mail(), live())).kind).toBe('sent')
    expect((await shop.send(mail({ from: { address: 'ghost@contoso.com' } }), live())).kind).toBe(
      'reject',
    )
    expect(
      await transport.lookupFor('rpm')?.(mail({ from: { address: 'ghost@contoso.com' } }), live()),
    ).toMatchObject({
      rejected: { code: 'ErrorInvalidUser' },
    })
    const graphLines = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter(
        (l) =>
          String(l.msg).startsWith('graph sendMail') ||
          String(l.msg).startsWith('graph mailbox lookup'),
      )
      .map((l) => [l.msg, l.db])
    expect(graphLines).toEqual([
      ['graph sendMail accepted', 'shop'],
      ['graph sendMail not accepted', 'shop'],
      ['graph mailbox lookup refused', 'rpm'],
    ])
  })

  test('a mail without a sender mailbox goes out from MAIL_FROM', async () => {
    const s = await setup()
    expect((await s.sender.send(mail({ from: { address: '' } }), live())).kind).toBe('sent')
    expect(s.fake.accepted[0]!.mailbox).toBe(FROM)
  })

  test('a 202 whose (empty) body is cut off is still sent, never repeated', async () => {
    const s = await setup()
    // Graph accepted the message; the connection then breaks while the body is read.
    const cutOff: typeof fetch = Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        const res = await fetch(input, init)
        const broken = new ReadableStream({ start: (c) => c.error(new Error('socket closed')) })
        return new Response(broken, { status: res.status, headers: res.headers })
      },
      { preconnect: fetch.preconnect },
    )
    const sender = createGraphSender({
      config: baseConfig(s.fake),
      mailFrom: FROM,
      tokens: s.tokens,
      fetch: cutOff,
      clock: s.clock,
      log: createLogger('error', () => {}),
    })
    expect(await sender.send(mail(), live())).toMatchObject({ kind: 'sent', httpStatus: 202 })
    expect(s.fake.accepted).toHaveLength(1)
  })

  test('a hung request hits the deadline: retry with code timeout', async () => {
    const s = await setup({ config: { requestTimeoutMs: 150 } })
    await s.tokens.getToken()
    s.fake.setFaults({ sendMail: ['hang'] })
    expect(await s.sender.send(mail(), live())).toMatchObject({ kind: 'retry', code: 'timeout' })
  })

  test('each request carries its own client-request-id; one Graph never answered keeps it as its request id', async () => {
    // Read as the requests leave: a deadline that ends before the hung one reaches the fake still
    // leaves its id with the outcome.
    const sentIds: string[] = []
    const s = await setup({
      fetch: (async (url, init) => {
        const id = new Headers(init?.headers).get('client-request-id')
        if (id) sentIds.push(id)
        return fetch(url, init)
      }) as typeof fetch,
    })
    expect(await s.sender.send(mail(), live())).toMatchObject({ kind: 'sent' })
    s.fake.setFaults({ sendMail: ['hang'] })
    const timedOut = await s.within(150).send(mail(), live())
    expect(timedOut).toMatchObject({ kind: 'retry', code: 'timeout' })
    expect(s.fake.requests[0]?.clientRequestId).toBe(sentIds[0]!)
    const [answered, unanswered] = sentIds
    expect(answered).toMatch(/^[0-9a-f-]{36}$/)
    expect(unanswered).toMatch(/^[0-9a-f-]{36}$/)
    expect(unanswered).not.toBe(answered)
    // Graph's activity logs hold it (ClientRequestId): whether the request arrived can be found.
    expect(timedOut.requestId).toBe(unanswered!)
  })

  test('a token endpoint hanging past the send deadline: token_timeout, no request, not ambiguous', async () => {
    const s = await setup({ config: { requestTimeoutMs: 150 } })
    s.fake.setFaults({ token: ['hang'] })
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'token_timeout',
      ambiguous: false,
    })
    expect(s.fake.sendMailRequests()).toBe(0)
  })

  test('shutdown during a hung request: retry with code aborted', async () => {
    const s = await setup()
    s.fake.setFaults({ sendMail: ['hang'] })
    const shutdown = new AbortController()
    const pending = s.sender.send(mail(), shutdown.signal)
    await until(() => s.fake.inFlight() === 1, 'the request to hang')
    shutdown.abort()
    expect(await pending).toMatchObject({ kind: 'retry', code: 'aborted' })
  })

  test('a stop after Graph accepted but before its answer came back: the line says the answer was lost, not that Graph refused', async () => {
    const s = await setup()
    s.fake.setFaults({ sendMail: ['accept_then_hang'] })
    const shutdown = new AbortController()
    const pending = s.sender.send(mail(), shutdown.signal)
    await until(() => s.fake.inFlight() === 1, 'the request to hang')
    shutdown.abort()
    expect(await pending).toMatchObject({ kind: 'retry', code: 'aborted' })
    expect(s.fake.accepted).toHaveLength(1)
    const lines = s.logLines.map((l) => JSON.parse(l) as { msg: string; code?: string })
    expect(lines.filter((l) => l.code === 'aborted').map((l) => l.msg)).toEqual([
      'graph sendMail unanswered: whether Graph accepted it is not known',
    ])
  })

  test('a certificate that cannot be verified (unknown issuer, another host): graph_unreachable, uncounted, not ambiguous; no request reached the host', async () => {
    const s = await setup()
    await s.tokens.getToken()
    const served = await generateTestCertificate({ commonName: 'graph.other.example' })
    let requests = 0
    const host = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      tls: { cert: served.certPem, key: served.keyPem },
      fetch: () => {
        requests++
        return new Response(null, { status: 202 })
      },
    })
    try {
      const apiUrl = `https://127.0.0.1:${host.port}/v1.0`
      for (const tls of [{}, { ca: served.certPem }]) {
        // The second trusts the certificate, which names another host than the one asked.
        const verifying: typeof fetch = Object.assign(
          (input: string | URL | Request, init?: RequestInit) => fetch(input, { ...init, tls }),
          { preconnect: fetch.preconnect },
        )
        const sender = createGraphSender({
          config: { ...baseConfig(s.fake), apiUrl },
          mailFrom: FROM,
          tokens: s.tokens,
          fetch: verifying,
          clock: s.clock,
          log: createLogger('error', () => {}),
        })
        expect(await sender.send(mail(), live())).toMatchObject({
          kind: 'retry',
          code: 'graph_unreachable',
          throttled: true,
          ambiguous: false,
        })
      }
      expect(requests).toBe(0)
    } finally {
      await host.stop(true)
    }
  })

  test('nobody listening: an uncounted graph_unreachable wait, not ambiguous (nothing reached Graph), the errno named', async () => {
    // Port 1, seen refused: a port freed here could be another run's server's by the send.
    const port = await closedPort()
    const s = await setup()
    await s.tokens.getToken()
    const sender = createGraphSender({
      config: { ...baseConfig(s.fake), apiUrl: `http://127.0.0.1:${port}/v1.0` },
      mailFrom: FROM,
      tokens: s.tokens,
      fetch,
      clock: s.clock,
      log: createLogger('error', () => {}),
    })
    const outcome = await sender.send(mail(), live())
    expect(outcome).toMatchObject({
      kind: 'retry',
      code: 'graph_unreachable',
      throttled: true,
      pausesMailbox: false,
      ambiguous: false,
    })
    expect(outcome.kind === 'retry' && outcome.message).toMatch(
      /^Graph unreachable \(ECONNREFUSED\)/,
    )
    expect(sender.reachability.warning()).toMatch(/^graph unreachable since .* \(ECONNREFUSED\)/)
  })

  test('Graph unreachable: past the back-off one request probes while the others wait for its answer; answered, they all go', async () => {
    const downPort = await closedPort()
    let down = true
    let graphFetches = 0
    let inFlight = 0
    let held: BoundedLatch | null = null
    const through = Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        const url = new URL(input instanceof Request ? input.url : String(input))
        if (!url.pathname.endsWith('/sendMail')) return fetch(input, init)
        graphFetches++
        inFlight++
        try {
          if (down) return await fetch(`http://127.0.0.1:${downPort}${url.pathname}`, init)
          if (held) await held.wait()
          return await fetch(input, init)
        } finally {
          inFlight--
        }
      },
      { preconnect: fetch.preconnect },
    )
    const s = await setup({ fetch: through })
    expect(await s.sender.send(mail(), live())).toMatchObject({ code: 'graph_unreachable' })
    // Within the back-off: nothing is tried.
    expect(await s.sender.send(mail(), live())).toMatchObject({ code: 'graph_unreachable' })
    expect(graphFetches).toBe(1)
    down = false
    held = boundedLatches(HELD_MS).make('the probe let go once the others waited')
    s.clock.advance(5_000)
    const sends = Array.from({ length: 6 }, () => s.sender.send(mail(), live()))
    await until(() => graphFetches >= 2, 'the probe')
    // Every send started in the same tick and the poll above yielded to them all: only the probe
    // reached Graph.
    expect(graphFetches).toBe(2)
    expect(inFlight).toBe(1)
    const probe = held
    held = null
    probe.resolve()
    const outcomes = await Promise.all(sends)
    expect(outcomes.map((o) => o.kind)).toEqual(Array(6).fill('sent'))
    expect(graphFetches).toBe(7)
    expect(s.fake.accepted).toHaveLength(6)
    expect(s.sender.reachability.cause()).toBeNull()
    const lines = s.logLines.map((l) => JSON.parse(l) as { level: string; msg: string })
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'graph unreachable: mail waits, uncounted',
    ])
    expect(lines.filter((l) => l.msg === 'graph reachable again')).toHaveLength(1)
  })

  test('a request whose deadline passed while it waited for a slow probe goes back unsent and uncounted, not as an ambiguous timeout', async () => {
    const g = await graphComingBack()
    const s = await setup({ fetch: g.fetch, config: { requestTimeoutMs: 1_000 } })
    expect(await s.sender.send(mail(), live())).toMatchObject({ code: 'graph_unreachable' })
    g.down = false
    const probeAnswer = boundedLatches(HELD_MS).make('the slow probe answered')
    g.before = (n, signal) =>
      n === 2
        ? probeAnswer.wait()
        : // A request that went after the probe with its deadline spent: the deadline's timer
          // fires before a byte of it leaves.
          new Promise<void>((resolve) => {
            if (signal.aborted) resolve()
            else signal.addEventListener('abort', () => resolve(), { once: true })
          })
    s.clock.advance(5_000)
    const probe = s.sender.send(mail(), live())
    const waiter = s.sender.send(mail(), live())
    await until(() => g.sendMails === 2, 'the probe')
    // The probe is slower than a request timeout (a 401 refresh doubles it): the waiter's deadline
    // passes just as Graph answers it.
    s.clock.advance(1_000)
    probeAnswer.resolve()
    expect(await probe).toMatchObject({ kind: 'sent' })
    const waited = await waiter
    expect(waited).toMatchObject({
      kind: 'retry',
      code: 'graph_unreachable',
      throttled: true,
      pausesMailbox: false,
      ambiguous: false,
    })
    // Graph answers again: the row is due in a second, not at the end of a back-off.
    expect(waited.kind === 'retry' && waited.afterMs).toBe(1_000)
    expect(g.sendMails).toBe(2)
    expect(s.fake.accepted).toHaveLength(1)
    expect(s.sender.reachability.cause()).toBeNull()
  })

  test('a stop ends a wait for the probe at once: the waiting request goes back unsent (aborted), the probe still unanswered', async () => {
    const g = await graphComingBack()
    // A deadline no test outlives: only the stop can end the wait.
    const s = await setup({ fetch: g.fetch, config: { requestTimeoutMs: 120_000 } })
    expect(await s.sender.send(mail(), live())).toMatchObject({ code: 'graph_unreachable' })
    g.down = false
    const probeAnswer = boundedLatches(HELD_MS).make('the probe answered after the stop')
    g.before = () => probeAnswer.wait()
    s.clock.advance(5_000)
    const probe = s.sender.send(mail(), live())
    const stop = new AbortController()
    const waiter = s.sender.send(mail(), stop.signal)
    await until(() => g.sendMails === 2, 'the probe')
    stop.abort()
    expect(await waiter).toMatchObject({ kind: 'retry', code: 'aborted', ambiguous: false })
    expect(g.sendMails).toBe(2)
    probeAnswer.resolve()
    expect(await probe).toMatchObject({ kind: 'sent' })
    expect(s.fake.accepted).toHaveLength(1)
  })

  test('attachments just under 3 MB are sent; more is rejected before any request', async () => {
    const s = await setup()
    const attachment = (bytes: number) => ({
      filename: 'report.pdf',
      contentType: 'application/pdf',
      contentBase64: Buffer.alloc(bytes, 1).toString('base64'),
    })
    expect(
      (
        await s.sender.send(
          mail({ attachments: [attachment(3 * 1024 * 1024 - 64 * 1024)] }),
          live(),
        )
      ).kind,
    ).toBe('sent')
    expect(
      await s.sender.send(mail({ attachments: [attachment(3 * 1024 * 1024 + 1)] }), live()),
    ).toMatchObject({ kind: 'reject', code: 'attachment_too_large' })
    expect(s.fake.accepted).toHaveLength(1)
  })

  test('the concurrency limit of the fake answers 429 MailboxConcurrency above it', async () => {
    const s = await setup({ fake: { concurrencyLimit: 2 } })
    s.fake.setFaults({ sendMail: ['hang', 'hang'] })
    const shutdown = new AbortController()
    const hung = [s.sender.send(mail(), shutdown.signal), s.sender.send(mail(), shutdown.signal)]
    await until(() => s.fake.inFlight() === 2, 'two hung requests')
    expect(await s.sender.send(mail(), live())).toMatchObject({
      kind: 'retry',
      code: 'ApplicationThrottled',
      throttled: true,
    })
    expect(s.fake.maxConcurrent).toBe(3)
    shutdown.abort()
    await Promise.all(hung)
  })
})

test('a send whose database id is taken up past its request deadline (the event loop held meanwhile) makes no request: its deadline runs from the send, where the lease was last checked', async () => {
  const s = await setup()
  // The token is cached: the request would go at once.
  await s.tokens.getToken()
  const db = s.sender.forDatabase('shop', {
    alone: true,
    // Its answer is taken up a request timeout and a second after the send began (a template
    // render of another row held the event loop): the lease's margin for this send is spent.
    id: async () => {
      s.clock.advance(graphConfigFor(s.fake).requestTimeoutMs + 1_000)
      return '00000000-0000-4000-8000-000000000001'
    },
  })
  expect(await db.send(mail(), live())).toMatchObject({
    kind: 'retry',
    code: 'token_timeout',
    ambiguous: false,
  })
  expect(s.fake.sendMailRequests()).toBe(0)
})

describe('mailbox lookup', () => {
  test('found in Sent Items after a send, not found for another id', async () => {
    const s = await setup()
    const m = mail()
    await s.sender.send(m, live())
    expect(await s.sender.lookupSentMessage(FROM, m.outboxId, live())).toBe('found')
    expect(await s.sender.lookupSentMessage(FROM, 'no-such-id', live())).toBe('not_found')
  })

  test('still in Drafts: found through the whole-mailbox fallback', async () => {
    const s = await setup()
    s.fake.setFaults({ landIn: 'drafts' })
    const m = mail()
    await s.sender.send(m, live())
    expect(await s.sender.lookupSentMessage(FROM, m.outboxId, live())).toBe('found')
  })

  test('saveToSentItems false leaves nothing to find', async () => {
    const s = await setup({ config: { saveToSentItems: false } })
    const m = mail()
    await s.sender.send(m, live())
    expect(s.fake.accepted[0]!.saveToSentItems).toBe(false)
    expect(await s.sender.lookupSentMessage(FROM, m.outboxId, live())).toBe('not_found')
  })

  test('without Mail.Read the lookup is unavailable', async () => {
    const s = await setup({ fake: { mailRead: false } })
    expect(await s.sender.lookupSentMessage(FROM, '1', live())).toBe('unavailable')
  })

  test('a sender mailbox Graph does not know (404) refuses the lookup with its code, as it refuses the send', async () => {
    const s = await setup({
      fake: { mailboxes: [FROM, 'gone@contoso.com'], disabledMailboxes: ['gone@contoso.com'] },
    })
    for (const [from, code] of [
      ['nobody@contoso.com', 'ErrorInvalidUser'],
      ['gone@contoso.com', 'MailboxNotEnabledForRESTAPI'],
    ] as const) {
      expect(await s.sender.send(mail({ from: { address: from } }), live())).toMatchObject({
        kind: 'reject',
        code,
        httpStatus: 404,
      })
      expect(await s.sender.lookupSentMessage(from, '1', live())).toMatchObject({
        rejected: { code, httpStatus: 404 },
      })
    }
  })

  test('a throttled lookup says for how long, as Graph’s Retry-After does (30 s without one)', async () => {
    const s = await setup()
    const throttled = { status: 429, code: 'ApplicationThrottled', retryAfter: '7' }
    const unavailable = { status: 503, code: 'ServiceUnavailable' }
    s.fake.setFaults({ lookup: [throttled, unavailable] })
    expect(await s.sender.lookupSentMessage(FROM, '1', live())).toEqual({
      throttledForMs: 7_000,
      httpStatus: 429,
    })
    expect(await s.sender.lookupSentMessage(FROM, '1', live())).toEqual({
      throttledForMs: 30_000,
      httpStatus: 503,
    })
    expect(await s.sender.lookupSentMessage(FROM, '1', live())).toBe('not_found')
  })

  test('a lookup throttled with Retry-After: 0 still waits a second, as a send does', async () => {
    const s = await setup()
    s.fake.setFaults({ lookup: [{ status: 429, code: 'ApplicationThrottled', retryAfter: '0' }] })
    // 0 would ask again at once, uncounted, in a loop until the throttle deadline.
    expect(await s.sender.lookupSentMessage(FROM, '1', live())).toEqual({
      throttledForMs: 1_000,
      httpStatus: 429,
    })
  })

  test('a lookup Graph answers 500 is an error (a failed lookup); one a stop cut off before Graph answered is stopped', async () => {
    const s = await setup()
    s.fake.setFaults({ lookup: [{ status: 500, code: 'InternalServerError' }] })
    expect(await s.sender.lookupSentMessage(FROM, '1', live())).toBe('error')
    let answer = () => {}
    s.fake.setFaults({ lookupAnswerAfter: new Promise<void>((resolve) => (answer = resolve)) })
    const stop = new AbortController()
    const pending = s.sender.lookupSentMessage(FROM, '1', stop.signal)
    await until(() => s.fake.inFlight() === 1, 'the lookup to be held')
    stop.abort()
    expect(await pending).toBe('stopped')
    answer()
  })

  test('a lookup that gets no token answers the wait a send gets (the shared backoff), not an error', async () => {
    const s = await setup({ tokenRequestTimeoutMs: 300 })
    s.fake.setFaults({ token: [{ status: 500, error: 'server_error', aadsts: 50000 }] })
    const looked = await s.sender.lookupSentMessage(FROM, '1', live())
    const sent = await s.sender.send(mail(), live())
    expect(looked).toEqual({ unreachable: sent as Extract<typeof sent, { kind: 'retry' }> })
    expect(sent).toMatchObject({ kind: 'retry', code: 'AADSTS50000', throttled: true })
    expect(s.fake.tokenRequests).toHaveLength(1)
    // A lookup whose deadline ends while Entra hangs is no different.
    s.clock.advance(s.tokens.retryInMs())
    s.fake.setFaults({ token: ['hang'] })
    const hung = await s.within(100).lookupSentMessage(FROM, '1', live())
    expect(hung).toMatchObject({ unreachable: { kind: 'retry', code: 'token_timeout' } })
  })

  test('a lookup refreshes an expired token once, like a send', async () => {
    const s = await setup()
    const m = mail()
    await s.sender.send(m, live())
    s.fake.revokeTokens('expired')
    expect(await s.sender.lookupSentMessage(FROM, m.outboxId, live())).toBe('found')
    expect(s.fake.tokenRequests).toHaveLength(2)
  })
})

describe('the fake token endpoint is strict', () => {
  async function tokenRequest(
    fake: FakeGraph,
    assertion: string,
    url = tokenUrlFor(fake.authorityUrl, fake.tenantId),
  ) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: fake.clientId,
        scope: graphScopeFor(fake.apiUrl),
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: assertion,
        'x-client-SKU': 'msal.js.node',
      }),
    })
    return { status: res.status, json: (await res.json()) as Record<string, unknown> }
  }

  async function sign(
    fake: FakeGraph,
    header: { alg: string } & Record<string, unknown>,
    claims: Record<string, unknown> = {},
  ) {
    const now = Math.floor(Date.now() / 1000)
    return new SignJWT({
      aud: tokenUrlFor(fake.authorityUrl, fake.tenantId),
      iss: fake.clientId,
      sub: fake.clientId,
      jti: crypto.randomUUID(),
      nbf: now,
      exp: now + 600,
      ...claims,
    })
      .setProtectedHeader({ typ: 'JWT', ...header })
      .sign(createPrivateKey(cert.keyPem))
  }

  const sha = (kind: 'fingerprint' | 'fingerprint256') =>
    Buffer.from(new X509Certificate(cert.certPem)[kind].replaceAll(':', ''), 'hex').toString(
      'base64url',
    )

  test("MSAL Node's own assertion is accepted (the fake agrees with Microsoft's client)", async () => {
    const fake = await startFakeGraph({ certificates: [cert.certPem] })
    fakes.push(fake)
    const hex = new X509Certificate(cert.certPem).fingerprint256.replaceAll(':', '')
    const jwt = ClientAssertion.fromCertificateWithSha256Thumbprint(hex, cert.keyPem).getJwt(
      new CryptoProvider(),
      fake.clientId,
      tokenUrlFor(fake.authorityUrl, fake.tenantId),
    )
    const { status, json } = await tokenRequest(fake, jwt)
    expect(status).toBe(200)
    expect(json).toMatchObject({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599 })
  })

  test.each([
    [
      'a SHA-256 thumbprint in x5t',
      () => ({ alg: 'RS256', x5t: sha('fingerprint256') }),
      {},
      401,
      700027,
    ],
    [
      'PS256 with the SHA-1 x5t',
      () => ({ alg: 'PS256', x5t: sha('fingerprint') }),
      {},
      401,
      700027,
    ],
    [
      'an expired assertion',
      () => ({ alg: 'PS256', 'x5t#S256': sha('fingerprint256') }),
      { exp: Math.floor(Date.now() / 1000) - 3600, nbf: Math.floor(Date.now() / 1000) - 4000 },
      401,
      700024,
    ],
    [
      'a lifetime over 10 minutes',
      () => ({ alg: 'PS256', 'x5t#S256': sha('fingerprint256') }),
      { exp: Math.floor(Date.now() / 1000) + 3600 },
      401,
      700024,
    ],
    [
      'sub different from iss',
      () => ({ alg: 'PS256', 'x5t#S256': sha('fingerprint256') }),
      { sub: 'someone-else' },
      401,
      50048,
    ],
    [
      'the wrong audience',
      () => ({ alg: 'PS256', 'x5t#S256': sha('fingerprint256') }),
      { aud: 'https://login.microsoftonline.com/other/v2.0' },
      401,
      50027,
    ],
  ] as const)('refuses %s', async (_name, header, claims, status, aadsts) => {
    const fake = await startFakeGraph({ certificates: [cert.certPem] })
    fakes.push(fake)
    const res = await tokenRequest(fake, await sign(fake, header(), claims))
    expect(res.status).toBe(status)
    expect(res.json).toMatchObject({ error: 'invalid_client', error_codes: [aadsts] })
    expect(String(res.json.error_description)).toMatch(
      new RegExp(
        `^AADSTS${aadsts}: .*\\r\\nTrace ID: .*\\r\\nCorrelation ID: .*\\r\\nTimestamp: `,
        's',
      ),
    )
  })

  test('a signature by another key is refused with AADSTS700027', async () => {
    const fake = await startFakeGraph({ certificates: [cert.certPem] })
    fakes.push(fake)
    const forged = certificateCredential({
      certPem: unregistered.certPem,
      keyPem: unregistered.keyPem,
      algorithm: 'PS256',
      now: Date.now(),
    })
    // Same thumbprint header as the registered certificate, signed with the wrong key.
    const { client_assertion } = await forged.authFields({
      tokenUrl: tokenUrlFor(fake.authorityUrl, fake.tenantId),
      clientId: fake.clientId,
      now: Date.now(),
    })
    const [, payload, signature] = client_assertion!.split('.')
    const header = Buffer.from(
      JSON.stringify({ alg: 'PS256', typ: 'JWT', 'x5t#S256': sha('fingerprint256') }),
    ).toString('base64url')
    const res = await tokenRequest(fake, `${header}.${payload}.${signature}`)
    expect(res.json).toMatchObject({ error: 'invalid_client', error_codes: [700027] })
    expect(String(res.json.error_description)).toContain('signature validation')
  })

  test('a scope for another resource is refused', async () => {
    const fake = await startFakeGraph({ certificates: [cert.certPem] })
    fakes.push(fake)
    const res = await fetch(tokenUrlFor(fake.authorityUrl, fake.tenantId), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: fake.clientId,
        scope: 'https://graph.microsoft.com/.default',
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await sign(fake, { alg: 'PS256', 'x5t#S256': sha('fingerprint256') }),
      }),
    })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'invalid_resource' })
  })
})

/**
 * A fetch that refuses every connection to Graph while `down` (port 1, seen refused), then passes sendMail
 * on, each once `before` (given its 1-based number among sendMails and its signal) has settled.
 */
async function graphComingBack() {
  const downPort = await closedPort()
  const g = {
    down: true,
    sendMails: 0,
    before: null as ((n: number, signal: AbortSignal) => Promise<void>) | null,
    fetch: Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        const url = new URL(input instanceof Request ? input.url : String(input))
        if (!url.pathname.endsWith('/sendMail')) return fetch(input, init)
        const n = ++g.sendMails
        if (g.down) return fetch(`http://127.0.0.1:${downPort}${url.pathname}`, init)
        await g.before?.(n, init?.signal ?? live())
        return fetch(input, init)
      },
      { preconnect: fetch.preconnect },
    ),
  }
  return g
}

/**
 * A fetch that passes everything on to the fake and records the signal of each Graph request
 * (sendMail, lookups); after `hold`, the next Graph request waits for `release` before it goes.
 */
function holdingFirstRequest() {
  const latches = boundedLatches(HELD_MS)
  let held: BoundedLatch | null = null
  let gate = latches.make('the held Graph request released')
  const g = {
    signals: [] as AbortSignal[],
    hold: () => {
      gate = latches.make('the held Graph request released')
      held = gate
    },
    release: () => gate.resolve(),
    fetch: Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        const url = new URL(input instanceof Request ? input.url : String(input))
        if (url.pathname.includes('/users/')) {
          g.signals.push(init?.signal ?? live())
          const wait = held
          held = null
          await wait?.wait()
        }
        return fetch(input, init)
      },
      { preconnect: fetch.preconnect },
    ),
  }
  return g
}

function baseConfig(fake: FakeGraph): GraphConfig {
  return graphConfigFor(fake)
}
