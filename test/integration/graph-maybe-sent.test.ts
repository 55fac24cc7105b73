// Answers after which Graph may hold the message (a reset once the request is written, a gateway's 502): looked up before any resend.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { type FakeGraph, graphConfigFor, startFakeGraph } from '../support/fake-graph.ts'
import { outboundMail } from '../support/outbound-mail.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const FROM = 'noreply@contoso.com'
const stops: (() => unknown)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
})

const mail = outboundMail(FROM)

test('a reset once the request is written is an ambiguous network failure, never "unreachable" (which would resend unlooked)', async () => {
  const secret = randomUUID()
  const fake = await startFakeGraph({ clientSecret: secret })
  stops.push(() => fake.stop())
  // Graph's side of the connection: reads the request to the end of its JSON body, then drops
  // the connection without a byte of answer (a load balancer's idle cut, a backend crash).
  let received = ''
  const graph = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(socket, chunk) {
        received += chunk.toString()
        if (received.endsWith('}')) socket.end()
      },
    },
  })
  stops.push(() => graph.stop(true))
  // Token requests go to the fake Entra; Graph requests to the socket above.
  const viaReset: typeof fetch = Object.assign(
    (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(String(input))
      if (!url.pathname.endsWith('/oauth2/v2.0/token')) url.port = String(graph.port)
      return fetch(url, init)
    },
    { preconnect: fetch.preconnect },
  )
  const transport = createGraphTransport(graphConfigFor(fake, { clientSecret: secret }), FROM, {
    fetch: viaReset,
    clock: systemClock,
    log: createLogger('error', () => {}),
  })
  const outcome = await transport.sender.send(mail, new AbortController().signal)
  expect(received).toContain('"singleValueExtendedProperties"')
  expect(outcome).toMatchObject({ kind: 'retry', code: 'network' })
  // Absent `ambiguous` is judged by the code: `network` may have reached Graph.
  expect(outcome.kind === 'retry' && outcome.ambiguous).toBeUndefined()
  expect(transport.graphOutage()).toBeNull()
})

test('a gateway’s 502 after Graph took the message may have sent it: ambiguous, as a 504 is, so it is looked up before any resend', async () => {
  const secret = randomUUID()
  const fake: FakeGraph = await startFakeGraph({ clientSecret: secret })
  stops.push(() => fake.stop())
  const transport = createGraphTransport(graphConfigFor(fake, { clientSecret: secret }), FROM, {
    fetch,
    clock: systemClock,
    log: createLogger('error', () => {}),
  })
  fake.setFaults({ sendMail: ['accept_then_502'] })
  const outcome = await transport.sender.send(mail, new AbortController().signal)
  expect(fake.accepted).toHaveLength(1)
  expect(outcome).toMatchObject({
    kind: 'retry',
    code: 'BadGateway',
    httpStatus: 502,
    ambiguous: true,
  })
})
