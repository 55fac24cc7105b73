// send-test refuses a sender or recipient that is not an address before anything is sent.
import { afterEach, expect, setDefaultTimeout, spyOn, test } from 'bun:test'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { sendTest } from '../../src/send-test.ts'
import { TOKEN_SLOW_MS } from '../../src/transport/token-slow.ts'
import { runBinary } from '../support/binary.ts'
import { graphEnvFor, startFakeGraph } from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const dirs: string[] = []
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

async function fileConfig() {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-send-test-unit-'))
  dirs.push(dir)
  const config = loadConfig(
    { MAIL_TRANSPORT: 'file', MAIL_FILE_DIR: dir, MAIL_FROM: 'outbox@example.com' },
    { requireDatabase: false },
  )
  return { dir, config }
}

/** Sending through the Graph fake, from MAIL_FROM as given. */
const graphConfig = (
  fake: Awaited<ReturnType<typeof startFakeGraph>>,
  mailFrom: string,
  clientSecret = 'right',
) =>
  loadConfig(
    { ...graphEnvFor(fake), MAIL_FROM: mailFrom, GRAPH_CLIENT_SECRET: clientSecret },
    { requireDatabase: false },
  )

test('a --from that is not an address is a usage error, and nothing is written', async () => {
  const { dir, config } = await fileConfig()
  for (const from of ['bad', 'a@b', 'two words@example.com']) {
    expect(await sendTest(config, { to: 'me@example.com', from }, silentLogger)).toBe(2)
  }
  expect(await readdir(dir)).toEqual([])
})

test('a valid --from is the message’s From', async () => {
  const { dir, config } = await fileConfig()
  expect(
    await sendTest(config, { to: 'me@example.com', from: 'sender@example.com' }, silentLogger),
  ).toBe(0)
  const files = await readdir(dir)
  expect(files).toHaveLength(1)
  expect(await readFile(join(dir, files[0]!), 'utf8')).toMatch(/^From: sender@example\.com\r?$/m)
})

test('with the file transport it says which file it wrote, so the first-run check ends at the message', async () => {
  const { dir, config } = await fileConfig()
  const printed = spyOn(console, 'log').mockImplementation(() => {})
  try {
    expect(await sendTest(config, { to: 'me@example.com', from: undefined }, silentLogger)).toBe(0)
    const [file] = await readdir(dir)
    expect(printed.mock.calls.map((c) => c.join(' '))).toEqual([
      `sent: file accepted the message (written to ${join(dir, file!)})`,
    ])
  } finally {
    printed.mockRestore()
  }
})

test('--from written `Name <address>` sends from that address under that name, as MAIL_FROM and enqueue take it', async () => {
  const { dir, config } = await fileConfig()
  for (const from of ['Ann <ann@example.com>', '"Doe, Ann" <ann@example.com>']) {
    expect([from, await sendTest(config, { to: 'me@example.com', from }, silentLogger)]).toEqual([
      from,
      0,
    ])
  }
  const files = (await readdir(dir)).sort()
  const heads = await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))
  expect(heads.map((h) => /^From: (.*?)\r?$/m.exec(h)?.[1]).sort()).toEqual([
    '"Doe, Ann" <ann@example.com>',
    'Ann <ann@example.com>',
  ])
  // The address inside is checked as a bare one is.
  for (const from of ['Ann <bad>', 'Ann <a@b>', 'Ann <>', 'Ann <ann@example.com'])
    expect([from, await sendTest(config, { to: 'me@example.com', from }, silentLogger)]).toEqual([
      from,
      2,
    ])
  expect(await readdir(dir)).toHaveLength(2)
})

test('--to written `Name <address>` is sent to that address under that name; one without a valid address is a usage error', async () => {
  const { dir, config } = await fileConfig()
  expect(await sendTest(config, { to: 'Me <me@example.com>', from: undefined }, silentLogger)).toBe(
    0,
  )
  const files = await readdir(dir)
  expect(await readFile(join(dir, files[0]!), 'utf8')).toMatch(/^To: Me <me@example\.com>\r?$/m)
  for (const to of ['Me <me>', 'Me <>', 'me'])
    expect([to, await sendTest(config, { to, from: undefined }, silentLogger)]).toEqual([to, 2])
  expect(await readdir(dir)).toHaveLength(1)
})

test('a --to given that is no address is said to be wrong, not to be missing', async () => {
  const { config } = await fileConfig()
  const printed = spyOn(console, 'error').mockImplementation(() => {})
  try {
    expect(await sendTest(config, { to: 'me', from: undefined }, silentLogger)).toBe(2)
    expect(printed.mock.calls.map((c) => c.join(' '))).toEqual([
      'send-test --to must be a valid e-mail address (or `Name <address>`)',
    ])
  } finally {
    printed.mockRestore()
  }
})

test('with Graph, --from may be a user id (GUID), as Graph takes one; the file transport refuses it', async () => {
  const userId = '0b2c6a3e-8f1d-4c2a-9e7b-5d4f3a2b1c0d'
  const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: [userId] })
  try {
    const config = graphConfig(fake, 'outbox@example.com')
    expect(await sendTest(config, { to: 'me@example.com', from: userId }, silentLogger)).toBe(0)
    expect(fake.accepted.map((m) => m.mailbox)).toEqual([userId])
  } finally {
    await fake.stop()
  }
  const { dir, config } = await fileConfig()
  expect(await sendTest(config, { to: 'me@example.com', from: userId }, silentLogger)).toBe(2)
  expect(await readdir(dir)).toEqual([])
})

test('MAIL_FROM written `Name <address>` sends from that mailbox, as the engine does', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: ['outbox@example.com'] })
  try {
    const config = graphConfig(fake, 'Outbox <outbox@example.com>')
    expect(await sendTest(config, { to: 'me@example.com', from: undefined }, silentLogger)).toBe(0)
    expect(fake.accepted.map((m) => m.mailbox)).toEqual(['outbox@example.com'])
  } finally {
    await fake.stop()
  }
})

test('a token Entra answers past TOKEN_SLOW_MS is waited for within the send’s deadline and the message sent: no worker to give it back to', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: ['outbox@example.com'] })
  const real = globalThis.fetch
  // Entra answers just after the request turns slow (3 s; a test's own transport can shorten it,
  // send-test's cannot).
  const slowEntra = spyOn(globalThis, 'fetch').mockImplementation((async (
    input: string | URL | Request,
    init?: RequestInit,
  ) => {
    const url = input instanceof Request ? input.url : String(input)
    if (url.includes('/oauth2/v2.0/token')) await Bun.sleep(TOKEN_SLOW_MS + 200)
    return real(input, init)
  }) as typeof fetch)
  const printed = spyOn(console, 'error').mockImplementation(() => {})
  try {
    const config = graphConfig(fake, 'outbox@example.com')
    const code = await sendTest(config, { to: 'me@example.com', from: undefined }, silentLogger)
    expect(printed.mock.calls.map((c) => c.join(' '))).toEqual([])
    expect(code).toBe(0)
    expect(fake.accepted.map((m) => m.mailbox)).toEqual(['outbox@example.com'])
  } finally {
    printed.mockRestore()
    slowEntra.mockRestore()
    await fake.stop()
  }
})

test('a credential Entra refuses is said to need fixing, not called transient', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: ['outbox@example.com'] })
  const printed = spyOn(console, 'error').mockImplementation(() => {})
  try {
    const config = graphConfig(fake, 'outbox@example.com', 'wrong-secret-value')
    expect(await sendTest(config, { to: 'me@example.com', from: undefined }, silentLogger)).toBe(1)
    const text = printed.mock.calls.map((c) => c.join(' ')).join('\n')
    // The engine waits for a fix (the row uncounted), but trying again changes nothing.
    expect(text).not.toContain('transient')
    expect(text).toContain('not sent: AADSTS7000215')
    expect(text).toContain('fix the app registration or credential')
    expect(text).not.toContain('wrong-secret-value')
    expect(fake.accepted).toEqual([])
  } finally {
    printed.mockRestore()
    await fake.stop()
  }
})

test('a MAIL_FROM Graph does not know is said to need fixing, not called transient', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: ['outbox@example.com'] })
  const printed = spyOn(console, 'error').mockImplementation(() => {})
  try {
    const config = graphConfig(fake, 'outbx@example.com')
    expect(await sendTest(config, { to: 'me@example.com', from: undefined }, silentLogger)).toBe(1)
    const text = printed.mock.calls.map((c) => c.join(' ')).join('\n')
    // The engine holds such rows until the mailbox is fixed; sending again changes nothing.
    expect(text).not.toContain('transient')
    expect(text).toContain('not sent: ErrorInvalidUser')
    expect(text).toContain('the sender mailbox MAIL_FROM is refused by Graph')
  } finally {
    printed.mockRestore()
    await fake.stop()
  }
})

test('with MAIL_FROM_ALLOWED set, a --from it does not list is refused naming the variable (exit 2, nothing sent); one it lists, in any case, is sent; MAIL_FROM needs no listing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-send-test-unit-'))
  dirs.push(dir)
  const config = loadConfig(
    {
      MAIL_TRANSPORT: 'file',
      MAIL_FILE_DIR: dir,
      MAIL_FROM: 'outbox@example.com',
      MAIL_FROM_ALLOWED: 'billing@example.com, notify@example.com',
    },
    { requireDatabase: false },
  )
  const printed = spyOn(console, 'error').mockImplementation(() => {})
  try {
    const refused = await sendTest(
      config,
      { to: 'me@example.com', from: 'Boss <ceo@example.com>' },
      silentLogger,
    )
    const text = printed.mock.calls.map((c) => c.join(' ')).join('\n')
    expect({ refused, text, written: await readdir(dir) }).toEqual({
      refused: 2,
      text: 'send-test --from ceo@example.com: MAIL_FROM_ALLOWED does not list that mailbox (sender_not_allowed), so a row naming it would fail too: name one it lists, or add it to the list',
      written: [],
    })
  } finally {
    printed.mockRestore()
  }
  expect(
    await sendTest(config, { to: 'me@example.com', from: 'Billing@Example.com' }, silentLogger),
  ).toBe(0)
  // As the engine sends a row naming no sender: from MAIL_FROM, which the list need not hold.
  expect(await sendTest(config, { to: 'me@example.com', from: undefined }, silentLogger)).toBe(0)
  expect(await readdir(dir)).toHaveLength(2)
})

test('send-test holds no lease and never heartbeats: the lease-timing rules do not refuse it (check-config still names them)', async () => {
  const main = resolve(import.meta.dir, '../../src/main.ts')
  const fake = await startFakeGraph({ clientSecret: 'right', mailboxes: ['outbox@example.com'] })
  try {
    const env = {
      PATH: process.env.PATH ?? '',
      ...graphEnvFor(fake),
      GRAPH_CLIENT_SECRET: 'right',
      MAIL_FROM: 'outbox@example.com',
      // Past half the lease, and past LEASE_SECONDS minus the timeout minus 2.
      HEARTBEAT_SECONDS: '40',
      GRAPH_REQUEST_TIMEOUT_SECONDS: '20',
    }
    const sent = await runBinary(
      process.execPath,
      [main, 'send-test', '--to', 'me@example.com'],
      env,
    )
    const timeout = await runBinary(
      process.execPath,
      [main, 'send-test', '--to', 'me@example.com'],
      { ...env, HEARTBEAT_SECONDS: '10', GRAPH_REQUEST_TIMEOUT_SECONDS: '40' },
    )
    expect([sent.code, sent.stderr, timeout.code, timeout.stderr]).toEqual([0, '', 0, ''])
    expect(fake.accepted).toHaveLength(2)
    const checked = await runBinary(process.execPath, [main, 'check-config'], env)
    expect([checked.code, checked.stderr]).toEqual([
      2,
      expect.stringContaining('problem: HEARTBEAT_SECONDS: must be at most half of LEASE_SECONDS'),
    ])
  } finally {
    await fake.stop()
  }
})

// CI met two sends in one millisecond: the second overwrote the first's file (one From of two).
test('two send-tests in one millisecond write two files', async () => {
  const { dir, config } = await fileConfig()
  const now = spyOn(Date, 'now').mockReturnValue(1_780_000_000_000)
  try {
    for (const to of ['a@example.com', 'b@example.com'])
      expect(await sendTest(config, { to, from: 'sender@example.com' }, silentLogger)).toBe(0)
  } finally {
    now.mockRestore()
  }
  expect(await readdir(dir)).toHaveLength(2)
})
