// The mailbox lookup when several databases' rows (whose ids repeat) are sent from one mailbox: each finds only its own.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { systemClock } from '../../src/clock.ts'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import {
  OUTBOX_DATABASE_ID_PROPERTY_ID,
  OUTBOX_DATABASE_PROPERTY_ID,
} from '../../src/transport/graph-message.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { createTransport, type Transport } from '../../src/transport-wiring.ts'
import {
  type FakeGraph,
  type FakeGraphOptions,
  graphConfigFor,
  startFakeGraph,
} from '../support/fake-graph.ts'
import { outboundMail } from '../support/outbound-mail.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const FROM = 'noreply@contoso.com'

let fakes: FakeGraph[] = []
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.stop()))
  fakes = []
})

/**
 * The Graph transport as `serve` wires it, lookups on, for `databases` (MAILER_DATABASES; none:
 * DATABASE_URL's one `default`), on a fake whose secret is made per run. No database is opened.
 */
async function transportFor(
  databases: string[],
  fakeOptions: FakeGraphOptions = {},
): Promise<{ fake: FakeGraph; t: Transport }> {
  const secret = randomUUID()
  const fake = await startFakeGraph({ clientSecret: secret, mailboxes: [FROM], ...fakeOptions })
  fakes.push(fake)
  const url = (name: string) => `postgres://mailer@127.0.0.1:5432/${name}`
  const config = loadConfig(
    {
      MAIL_TRANSPORT: 'graph',
      MAIL_FROM: FROM,
      GRAPH_TENANT_ID: fake.tenantId,
      GRAPH_CLIENT_ID: fake.clientId,
      GRAPH_CLIENT_SECRET: secret,
      GRAPH_AUTHORITY_URL: fake.authorityUrl,
      GRAPH_API_URL: fake.apiUrl,
      GRAPH_MAILBOX_LOOKUP: 'true',
      ...(databases.length > 0
        ? {
            MAILER_DATABASES: JSON.stringify(databases.map((name) => ({ name, url: url(name) }))),
          }
        : { DATABASE_URL: url('app') }),
    },
    { requireDatabase: true },
  )
  return {
    fake,
    t: createTransport(
      config,
      createLogger('error', () => {}),
    ),
  }
}

const mail = (outboxId: string) => outboundMail(FROM, { outboxId })

const live = () => new AbortController().signal

describe('several databases sending from one mailbox', () => {
  test("a row's lookup does not take another database's message with the same id for its own", async () => {
    const { fake, t } = await transportFor(['shop', 'billing'])
    // Row 7 of `shop` went out; row 7 of `billing` (another mail) was interrupted mid-send
    // before Graph had any of it. Its lookup must say so, or the mail is marked sent unsent.
    expect(await t.senderFor('shop').send(mail('7'), live())).toMatchObject({ kind: 'sent' })
    expect(await t.lookupFor('billing')!(mail('7'), live())).toBe('not_found')
    expect(await t.lookupFor('shop')!(mail('7'), live())).toBe('found')
    // Each message names its database next to its outbox id.
    const props = fake.accepted.map(
      (a) =>
        (a.body.message as { singleValueExtendedProperties: unknown[] })
          .singleValueExtendedProperties,
    )
    expect(props).toEqual([
      [
        { id: expect.stringMatching(/ Name OutboxId$/), value: '7' },
        { id: OUTBOX_DATABASE_PROPERTY_ID, value: 'shop' },
      ],
    ])
  })

  test('its own message is found past pages of other databases’ messages with its id (@odata.nextLink followed)', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `db${i}`)
    // Graph pages server-side whatever $top asks: 5 a page here.
    const { fake, t } = await transportFor(names, { maxPageSize: 5 })
    // Sent Items lists them oldest first here: the row's own message is on the third page.
    for (const name of names) {
      expect(await t.senderFor(name).send(mail('42'), live())).toMatchObject({ kind: 'sent' })
    }
    expect(await t.lookupFor('db11')!(mail('42'), live())).toBe('found')
    expect(fake.requests.filter((r) => r.kind === 'lookup')).toHaveLength(3)
    // Another id: one empty page of Sent Items, one of the whole mailbox.
    expect(await t.lookupFor('db3')!(mail('43'), live())).toBe('not_found')
    expect(fake.requests.filter((r) => r.kind === 'lookup')).toHaveLength(5)
  })

  test('a message an earlier release sent (no database named) is the row’s only when one database sends from the mailbox', async () => {
    // The process's base sender tags no database, as every release before this one.
    const alone = await transportFor([])
    expect(await alone.t.sender.send(mail('9'), live())).toMatchObject({ kind: 'sent' })
    expect(await alone.t.lookupFor('default')!(mail('9'), live())).toBe('found')
    // With several, it may be any one's row 9: another database's row 9 (another mail) is not
    // proof that this one's went out.
    const several = await transportFor(['shop', 'billing'])
    expect(await several.t.sender.send(mail('9'), live())).toMatchObject({ kind: 'sent' })
    const invoice = { ...mail('9'), subject: 'Your invoice' }
    expect(await several.t.lookupFor('billing')!(invoice, live())).toBe('not_found')
    const toBob = { ...mail('9'), to: [{ address: 'bob@contoso.com' }] }
    expect(await several.t.lookupFor('billing')!(toBob, live())).toBe('not_found')
  })

  test('with several databases, a send an earlier release started before a rolling deploy is found by its new release: its own mail (subject and To), not sent twice', async () => {
    const several = await transportFor(['shop', 'billing'])
    // billing's row 9, sent by the older binary (no database named), which was stopped before
    // Graph's answer; the new binary reclaims the row and looks it up.
    expect(await several.t.sender.send(mail('9'), live())).toMatchObject({ kind: 'sent' })
    expect(await several.t.lookupFor('billing')!(mail('9'), live())).toBe('found')
    // Addresses are compared as Graph compares them, without case.
    const upper = { ...mail('9'), to: [{ address: 'Ann@Contoso.com' }] }
    expect(await several.t.lookupFor('billing')!(upper, live())).toBe('found')
  })

  test('a next page on another host is not asked for (the token goes only where GRAPH_API_URL points): asked again later', async () => {
    const secret = randomUUID()
    const fake = await startFakeGraph({ clientSecret: secret, maxPageSize: 1 })
    fakes.push(fake)
    const elsewhere: string[] = []
    // Graph's answers as they come, but each @odata.nextLink moved to another host.
    const moved: typeof fetch = Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        const url = String(input)
        if (!url.startsWith(fake.authorityUrl)) {
          elsewhere.push(url)
          throw new Error('not this host')
        }
        const res = await fetch(input, init)
        if (!url.includes('/messages?')) return res
        const page = (await res.json()) as Record<string, unknown>
        const next = page['@odata.nextLink']
        if (typeof next === 'string') {
          page['@odata.nextLink'] = next.replace(fake.authorityUrl, 'https://elsewhere.example')
        }
        return Response.json(page, { status: res.status, headers: res.headers })
      },
      { preconnect: fetch.preconnect },
    )
    const graph = createGraphTransport(graphConfigFor(fake, { clientSecret: secret }), FROM, {
      fetch: moved,
      clock: systemClock,
      log: createLogger('error', () => {}),
    })
    const shop = graph.sender.forDatabase('shop', { alone: false })
    const billing = graph.sender.forDatabase('billing', { alone: false })
    expect(await billing.send(mail('5'), live())).toMatchObject({ kind: 'sent' })
    expect(await shop.send(mail('5'), live())).toMatchObject({ kind: 'sent' })
    // Shop's message is on Sent Items' second page, behind a link to another host.
    expect(await shop.lookupSentMessage(FROM, '5', live())).toBe('error')
    expect(elsewhere).toEqual([])
  })
})

describe('deployments whose databases share a name (each its own id, mailer.database_identity)', () => {
  /** A database's id as serve reads it once (db/database-id.ts), made here per run. */
  const idOf = (uuid: string) => async () => uuid

  test("another database's message carrying the same name and outbox id is not the row's; its own is, whatever name it carries", async () => {
    // Staging and production, each with DATABASE_URL: both `default`, each alone in its process.
    const { fake, t } = await transportFor([])
    const [stagingId, productionId] = [randomUUID(), randomUUID()]
    expect(await t.senderFor('default', idOf(stagingId)).send(mail('5'), live())).toMatchObject({
      kind: 'sent',
    })
    expect(
      fake.accepted.map((a) => (a.body.message as Props).singleValueExtendedProperties),
    ).toEqual([
      [
        { id: expect.stringMatching(/ Name OutboxId$/), value: '5' },
        { id: OUTBOX_DATABASE_PROPERTY_ID, value: 'default' },
        { id: OUTBOX_DATABASE_ID_PROPERTY_ID, value: stagingId },
      ],
    ])
    // Production's row 5, interrupted before Graph had it: even the same mail (staging's data
    // copied from production's) is another database's.
    expect(await t.lookupFor('default', idOf(productionId))!(mail('5'), live())).toBe('not_found')
    expect(await t.lookupFor('default', idOf(stagingId))!(mail('5'), live())).toBe('found')
    // A database renamed in MAILER_DATABASES while a send of its was interrupted keeps its id.
    expect(await t.lookupFor('renamed', idOf(stagingId))!(mail('5'), live())).toBe('found')
  })

  test('a message a release before the id sent (its name only) is the row’s when it names its database and is its mail (a rolling deploy: not sent twice)', async () => {
    const { t } = await transportFor([])
    const own = idOf(randomUUID())
    // The previous release's sends: the name, no id (a sender not wired to the database's id).
    expect(await t.senderFor('default').send(mail('7'), live())).toMatchObject({ kind: 'sent' })
    expect(await t.lookupFor('default', own)!(mail('7'), live())).toBe('found')
    // Another deployment's row 7 of the same name, another mail: not taken.
    const invoice = { ...mail('7'), subject: 'Your invoice' }
    expect(await t.lookupFor('default', own)!(invoice, live())).toBe('not_found')
    const toBob = { ...mail('7'), to: [{ address: 'bob@contoso.com' }] }
    expect(await t.lookupFor('default', own)!(toBob, live())).toBe('not_found')
    // The same mail, named by another database: not taken either.
    expect(await t.lookupFor('billing', own)!(mail('7'), live())).toBe('not_found')
    // A release before OutboxDatabase (no name at all): by its mail alone.
    expect(await t.sender.send(mail('8'), live())).toMatchObject({ kind: 'sent' })
    expect(await t.lookupFor('default', own)!(mail('8'), live())).toBe('found')
    expect(await t.lookupFor('default', own)!({ ...mail('8'), subject: 'Other' }, live())).toBe(
      'not_found',
    )
  })

  test('a database id that cannot be read: nothing is sent, uncounted and not ambiguous; the lookup asks again later', async () => {
    const { fake, t } = await transportFor([])
    const away = async (): Promise<string> => {
      throw new Error('connection refused')
    }
    expect(await t.senderFor('default', away).send(mail('9'), live())).toEqual({
      kind: 'retry',
      code: 'database_id_unread',
      message: expect.any(String),
      throttled: true,
      pausesMailbox: false,
      ambiguous: false,
    })
    expect(await t.lookupFor('default', away)!(mail('9'), live())).toBe('error')
    expect(fake.requests).toEqual([])
  })
})

type Props = { singleValueExtendedProperties: unknown[] }
