// A redirect on the way to Graph (a gateway, an http:// URL) is never taken for Graph's answer: no mail counts as sent on it.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { type FakeGraph, graphConfigFor, startFakeGraph } from '../support/fake-graph.ts'
import { outboundMail } from '../support/outbound-mail.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const FROM = 'noreply@contoso.com'

const stops: (() => Promise<unknown>)[] = []
afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()))
})

/**
 * Graph behind a server that answers every Graph request with `status` to a page of its own, which
 * answers any method 200 with HTML (a sign-in or notice page): what an egress gateway, or a
 * plain-http URL's upgrade, puts between the worker and Graph. Token requests pass to the fake
 * Entra, which names the resource by the gateway's origin (the one the worker is configured with).
 */
async function senderBehindRedirect(status: number, o: { tokenToo?: boolean } = {}) {
  const asked: string[] = []
  let fakePort: number | undefined
  const gate = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url)
      if (url.pathname.endsWith('/oauth2/v2.0/token') && !o.tokenToo) {
        return fetch(`http://127.0.0.1:${fakePort}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          body: await req.text(),
        })
      }
      asked.push(`${req.method} ${url.pathname}`)
      if (url.pathname === '/notice') {
        return new Response('<html><body>Please sign in</body></html>', {
          headers: { 'content-type': 'text/html' },
        })
      }
      return new Response(null, { status, headers: { location: '/notice' } })
    },
  })
  stops.push(() => gate.stop(true))
  const secret = randomUUID()
  const fake: FakeGraph = await startFakeGraph({
    clientSecret: secret,
    publicOrigin: `http://127.0.0.1:${gate.port}`,
  })
  fakePort = fake.port
  stops.push(() => fake.stop())
  const graph = createGraphTransport(graphConfigFor(fake, { clientSecret: secret }), FROM, {
    fetch,
    clock: systemClock,
    log: createLogger('error', () => {}),
  })
  return { fake, sender: graph.sender, tokens: graph.tokens, asked }
}

const mail = outboundMail(FROM)

const live = () => new AbortController().signal

describe('a redirect between the worker and Graph', () => {
  for (const status of [301, 302, 303, 307, 308]) {
    test(`${status} to a page that answers 200: the send is not sent, nor followed`, async () => {
      const { fake, sender, asked } = await senderBehindRedirect(status)
      const outcome = await sender.send(mail, live())
      // Followed, a 301/302/303 turns the POST into a GET of the page, whose 200 read as
      // Graph's acceptance: the row marked sent, its mail never sent.
      expect(outcome).toMatchObject({ kind: 'retry', code: `http_${status}`, httpStatus: status })
      expect(outcome.kind === 'retry' && outcome.ambiguous).toBeFalsy()
      // The bearer token went to the address configured, and nowhere it was sent on to.
      expect(asked).toEqual([`POST /v1.0/users/${encodeURIComponent(FROM)}/sendMail`])
      expect(fake.accepted).toHaveLength(0)
    })
  }

  test('a mailbox lookup redirected is no answer either: asked again later, never "not found"', async () => {
    const { sender, asked } = await senderBehindRedirect(302)
    expect(await sender.lookupSentMessage(FROM, '1', live())).toBe('error')
    expect(asked).toHaveLength(1)
  })

  test('a token request redirected gets no token, and its credential goes nowhere else', async () => {
    const { tokens, asked } = await senderBehindRedirect(307, { tokenToo: true })
    // Followed, a 307 posts the form (the client secret, or the signed assertion) to the page.
    await expect(tokens.getToken()).rejects.toMatchObject({
      code: 'token_http_307',
      permanent: false,
    })
    expect(asked).toEqual([expect.stringMatching(/^POST \/.+\/oauth2\/v2\.0\/token$/)])
  })
})
