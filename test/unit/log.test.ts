// Log lines carry ids and codes: personal fields and an error's row data never reach them.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function capture() {
  const lines: string[] = []
  return { lines, log: createLogger('debug', (l) => lines.push(l)) }
}

test('fields holding addresses, subjects, bodies or secrets are redacted, ids kept', () => {
  const { lines, log } = capture()
  log.child({ db: 'shop', from: 'desk@example.com' }).info('sent', {
    outboxId: '42',
    to: ['ann@example.com'],
    subject: 'Your order',
    text: 'Dear Ann',
    token: 'opaque-bearer-value',
  })
  const line = JSON.parse(lines[0]!)
  expect(line).toMatchObject({ msg: 'sent', db: 'shop', outboxId: '42', from: '[redacted]' })
  for (const value of [
    'desk@example.com',
    'ann@example.com',
    'Your order',
    'Dear Ann',
    'opaque-bearer-value',
  ])
    expect(lines[0]).not.toContain(value)
})

test("an error keeps its name, message and code, never the row data in a driver error's detail", () => {
  const { lines, log } = capture()
  // What pg raises for a row a constraint refuses: the whole row, message included, in `detail`.
  const err = Object.assign(
    new Error(
      'new row for relation "email_outbox" violates check constraint "email_outbox_expiry_check"',
    ),
    {
      code: '23514',
      detail: 'Failing row contains (1, default, {"to": [{"address": "ann@example.com"}]}).',
    },
  )
  log.warn('recording send outcomes failed; retrying', { count: 1, err })
  const line = JSON.parse(lines[0]!)
  expect(line.err).toEqual({ name: 'Error', message: err.message, code: '23514' })
  expect(lines[0]).not.toContain('ann@example.com')
})

// Each key the logger drops, on a line and on a child's bound fields: a caller that passes one by
// mistake (a message's recipients, a database URL with its password) leaks nothing.
test('every personal or secret key is redacted, at every level and in a child’s bound fields', () => {
  const personal = [
    'to',
    'cc',
    'bcc',
    'from',
    'replyTo',
    'subject',
    'text',
    'html',
    'body',
    'address',
  ]
  const secret = ['password', 'secret', 'token', 'authorization', 'url']
  for (const key of [...personal, ...secret]) {
    const value = `${key}-value@example.com`
    const { lines, log } = capture()
    log.debug('d', { outboxId: '7', [key]: value })
    log.error('e', { outboxId: '7', [key]: value })
    log.child({ [key]: value }).warn('w', { outboxId: '7' })
    expect([key, lines.length]).toEqual([key, 3])
    for (const line of lines) {
      expect([key, line.includes(value)]).toEqual([key, false])
      expect(JSON.parse(line)).toMatchObject({ [key]: '[redacted]' })
    }
  }
})
