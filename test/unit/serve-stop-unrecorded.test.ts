// serve's last line, stopped with sends the provider accepted left unrecorded, says what becomes of them under the process's own settings.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import type { Drainer } from '../../src/outbox/drainer.ts'
import { stopServing } from '../../src/serve-stop.ts'

setDefaultTimeout(10_000)

const fileTransport = { DATABASE_URL: 'postgres://u:p@db/app', MAIL_TRANSPORT: 'file' }
const graph = {
  ...fileTransport,
  MAIL_TRANSPORT: 'graph',
  GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
  GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
  GRAPH_CLIENT_SECRET: 's',
  MAIL_FROM: 'outbox@example.com',
}

/** The last line of a stop whose one drainer left rows 132 and 108 unrecorded, under `env`'s settings. */
async function lastLineUnder(env: Record<string, string>) {
  const lines: Record<string, unknown>[] = []
  const drainer = {
    stop: async () => {},
    unrecordedSends: () => ({ ids: ['132', '108'], more: 0 }),
  } as unknown as Drainer
  await stopServing({
    log: createLogger('info', (l) => lines.push(JSON.parse(l))),
    graceSeconds: 1,
    drainers: new Map([['default', drainer]]),
    listeners: new Map(),
    servers: [],
    handles: [],
    stopWatchdog: () => {},
    reason: 'SIGTERM',
    graph: loadConfig(env).graph,
  })
  const last = lines.at(-1)!
  return { level: last.level, msg: last.msg, unrecorded: last.unrecorded }
}

const unrecorded = [{ db: 'default', ids: ['132', '108'] }]

test('lookups on (GRAPH_MAILBOX_LOOKUP=true): looked up once their leases expire, whatever AMBIGUOUS_SEND_POLICY says', async () => {
  const said = {
    level: 'error',
    msg: 'stopped with accepted sends unrecorded: looked up in the mailbox once their leases expire',
    unrecorded,
  }
  expect(await lastLineUnder({ ...graph, GRAPH_MAILBOX_LOOKUP: 'true' })).toEqual(said)
  expect(
    await lastLineUnder({ ...graph, GRAPH_MAILBOX_LOOKUP: 'true', AMBIGUOUS_SEND_POLICY: 'hold' }),
  ).toEqual(said)
})

test('lookups off, AMBIGUOUS_SEND_POLICY=hold: held for an operator as ambiguous_send, not sent again', async () => {
  expect(await lastLineUnder({ ...graph, AMBIGUOUS_SEND_POLICY: 'hold' })).toEqual({
    level: 'error',
    msg: 'stopped with accepted sends unrecorded: held for an operator once their leases expire (failed ambiguous_send, not sent again)',
    unrecorded,
  })
})

test('lookups off, AMBIGUOUS_SEND_POLICY=resend (the default) or a transport without lookups: sent again', async () => {
  const said = {
    level: 'error',
    msg: 'stopped with accepted sends unrecorded: sent again once their leases expire',
    unrecorded,
  }
  expect(await lastLineUnder(graph)).toEqual(said)
  expect(await lastLineUnder({ ...graph, AMBIGUOUS_SEND_POLICY: 'resend' })).toEqual(said)
  expect(await lastLineUnder(fileTransport)).toEqual(said)
})
