// The sender mailbox's standing as this process last heard it: a run of refusals, said once, ended by a send or by silence.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { createSenderMailbox, SENDER_MAILBOX_STALE_MS } from '../../src/transport/sender-mailbox.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function setup() {
  let now = Date.parse('2026-03-01T12:00:00Z')
  const lines: Record<string, unknown>[] = []
  const mailbox = createSenderMailbox({
    address: 'Sender@Example.com',
    log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    clock: { now: () => now },
  })
  const advance = (ms: number) => {
    now += ms
  }
  return { mailbox, lines, advance }
}

test('MAIL_FROM is matched as Graph matches a mailbox: case and spaces aside', () => {
  const { mailbox } = setup()
  expect(mailbox.isDefault(' sender@example.COM ')).toBe(true)
  expect(mailbox.isDefault('other@example.com')).toBe(false)
  expect(
    createSenderMailbox({ address: '', log: createLogger('error'), clock: systemClock }).isDefault(
      '',
    ),
  ).toBe(false)
})

test('a run of refusals is said once at error, a new cause again, its end once at info', () => {
  const { mailbox, lines, advance } = setup()
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  advance(300_000)
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  // The mailbox created, not yet licensed: another cause, said again.
  mailbox.refused({ code: 'MailboxNotEnabledForRESTAPI', httpStatus: 404 })
  expect(mailbox.warning()).toContain('HTTP 404 MailboxNotEnabledForRESTAPI')
  mailbox.accepted()
  mailbox.accepted()
  expect(lines.map((l) => [l.level, l.msg, l.code])).toEqual([
    ['error', 'sender mailbox refused by Graph: its rows wait', 'ErrorInvalidUser'],
    ['error', 'sender mailbox refused by Graph: its rows wait', 'MailboxNotEnabledForRESTAPI'],
    ['info', 'sender mailbox sends again', undefined],
  ])
  expect(lines[2]).toMatchObject({ mailbox: 'MAIL_FROM', refusals: 3, sinceMs: 300_000 })
  expect(mailbox.isRefused()).toBe(false)
  expect(mailbox.warning()).toBeNull()
})

test('a refusal this process has not heard again for a while is no longer reported: another worker may have sent since', () => {
  const { mailbox, lines, advance } = setup()
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  advance(SENDER_MAILBOX_STALE_MS - 1)
  expect(mailbox.isRefused()).toBe(true)
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  advance(SENDER_MAILBOX_STALE_MS - 1)
  expect(mailbox.isRefused()).toBe(true)
  advance(1)
  expect(mailbox.isRefused()).toBe(false)
  expect(mailbox.warning()).toBeNull()
  // Met again: a new run, said again.
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  expect(mailbox.isRefused()).toBe(true)
  expect(lines.filter((l) => l.level === 'error')).toHaveLength(2)
})

test('its lines, field by field: each new cause at error (no count, no reminder however long it stands), its end at info', () => {
  const { mailbox, lines, advance } = setup()
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404, requestId: 'r-1' })
  for (let i = 0; i < 6; i++) {
    advance(5 * 60_000)
    mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404, requestId: `r-${i + 2}` })
  }
  mailbox.refused({ code: 'ErrorAccessDenied', httpStatus: 403, retryInMs: 300_000 })
  // The standing answer is the one that began its cause, not the latest repeat of it.
  mailbox.refused({ code: 'ErrorAccessDenied', httpStatus: 404 })
  expect(mailbox.warning()).toContain('(HTTP 403 ErrorAccessDenied) since 2026-03-01T12:00:00.000Z')
  advance(1_000)
  mailbox.accepted()
  expect(lines.map(({ ts: _, ...l }) => l)).toEqual([
    {
      level: 'error',
      msg: 'sender mailbox refused by Graph: its rows wait',
      mailbox: 'MAIL_FROM',
      code: 'ErrorInvalidUser',
      httpStatus: 404,
      requestId: 'r-1',
    },
    {
      level: 'error',
      msg: 'sender mailbox refused by Graph: its rows wait',
      mailbox: 'MAIL_FROM',
      code: 'ErrorAccessDenied',
      httpStatus: 403,
      retryInMs: 300_000,
    },
    {
      level: 'info',
      msg: 'sender mailbox sends again',
      mailbox: 'MAIL_FROM',
      refusals: 9,
      sinceMs: 1_801_000,
    },
  ])
  expect(lines.map((l) => Object.keys(l).join())).toEqual([
    'ts,level,msg,mailbox,code,httpStatus,requestId',
    'ts,level,msg,mailbox,code,httpStatus,retryInMs',
    'ts,level,msg,mailbox,refusals,sinceMs',
  ])
})

test('a wall clock stepped forward neither drops a refusal from readiness nor moves the start it shows', () => {
  const c = { wall: Date.parse('2026-03-01T12:00:00Z'), mono: 1_000 }
  const mailbox = createSenderMailbox({
    address: 'sender@example.com',
    log: createLogger('error', () => {}),
    clock: { now: () => c.wall, monotonic: () => c.mono },
  })
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  c.wall += 3_600_000
  c.mono += 1_000
  expect(mailbox.isRefused()).toBe(true)
  expect(mailbox.warning()).toContain('since 2026-03-01T12:00:00.000Z')
})

test("a row sent back for MAIL_FROM's pause is told its cause: Graph's code when this process met the refusal, the pause's cause read when another worker did, else nothing", () => {
  const { mailbox } = setup()
  const refusedHere =
    "its sender mailbox MAIL_FROM is refused by Graph (HTTP 404 ErrorInvalidUser): paused, one row tries it again at the pause's end"
  const refusedElsewhere =
    "its sender mailbox MAIL_FROM is refused by Graph: paused, one row tries it again at the pause's end"
  // A throttle's pause (or none known): the caller words it.
  expect(mailbox.pauseReason('sender@example.com')).toBeNull()
  // The database says the pause is a refusal another worker met.
  expect(mailbox.pauseReason('sender@example.com', true)).toBe(refusedElsewhere)
  // Another mailbox is not MAIL_FROM: the caller words the refusal of a mailbox a row names.
  expect(mailbox.pauseReason('other@example.com', true)).toBeNull()
  mailbox.refused({ code: 'ErrorInvalidUser', httpStatus: 404 })
  expect(mailbox.pauseReason(' Sender@example.com')).toBe(refusedHere)
  expect(mailbox.pauseReason('sender@example.com', true)).toBe(refusedHere)
  expect(mailbox.pauseReason('other@example.com')).toBeNull()
})
