// A sender mailbox whose store is full (ErrorQuotaExceeded): its rows wait for room, they do not all fail at once.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { SENDING_QUOTA_PAUSE_MS } from '../../src/transport/graph-outcome.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { type FakeGraph, graphConfigFor, startFakeGraph } from '../support/fake-graph.ts'
import { outboundMail } from '../support/outbound-mail.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const FROM = 'noreply@contoso.com'
const OTHER = 'billing@contoso.com'

let fakes: FakeGraph[] = []
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.stop()))
  fakes = []
})

async function senderWithFull(full: string[]) {
  const secret = randomUUID()
  const fake = await startFakeGraph({ clientSecret: secret, fullMailboxes: full })
  fakes.push(fake)
  const graph = createGraphTransport(graphConfigFor(fake, { clientSecret: secret }), FROM, {
    fetch,
    clock: systemClock,
    log: createLogger('error', () => {}),
  })
  return { fake, sender: graph.sender }
}

const mail = (from: string) => outboundMail(from)

const live = () => new AbortController().signal

describe('a full sender mailbox (403 ErrorQuotaExceeded)', () => {
  for (const from of [FROM, OTHER]) {
    test(`${from === FROM ? 'MAIL_FROM' : 'a row’s own from'}: the send waits for room, uncounted, its mailbox paused, like a spent sending quota`, async () => {
      const { sender } = await senderWithFull([FROM, OTHER])
      // Rejected, every row of the mailbox (a noreply mailbox whose Sent Items filled it up)
      // would fail within seconds; nothing is wrong with the messages.
      expect(await sender.send(mail(from), live())).toMatchObject({
        kind: 'retry',
        code: 'ErrorQuotaExceeded',
        throttled: true,
        afterMs: SENDING_QUOTA_PAUSE_MS,
        httpStatus: 403,
      })
    })
  }

  test('a lookup in it is asked again after the same pause, not taken for a missing Mail.Read', async () => {
    const { sender } = await senderWithFull([FROM])
    // "unavailable" hands the row to AMBIGUOUS_SEND_POLICY: resent unverified, or held.
    // Graph's word kept: the row's code, as the send's (throttle-cause-metrics.test.ts).
    expect(await sender.lookupSentMessage(FROM, '1', live())).toEqual({
      throttledForMs: SENDING_QUOTA_PAUSE_MS,
      httpStatus: 403,
      quota: { code: 'ErrorQuotaExceeded', message: 'Mailbox has exceeded maximum mailbox size.' },
    })
  })

  test('another mailbox of the app still sends', async () => {
    const { fake, sender } = await senderWithFull([FROM])
    expect(await sender.send(mail(OTHER), live())).toMatchObject({ kind: 'sent' })
    expect(fake.accepted.map((a) => a.mailbox)).toEqual([OTHER])
  })
})
