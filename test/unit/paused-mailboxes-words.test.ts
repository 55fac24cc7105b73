// status's line of the paused mailboxes is worded by what the pending rows say paused them: a provider throttle, or Graph refusing a mailbox.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { oneDatabaseTable } from '../support/one-database-table.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** The table's line of the paused mailboxes, the pending rows' last codes being `codes`. */
function pausedLine(codes: string[]): string | undefined {
  const table = oneDatabaseTable({
    pausedMailboxes: { count: 1, longestSeconds: 240 },
    pendingLastErrors: {
      total: codes.length,
      byCode: codes.map((code) => ({ code, rows: 1 })),
      complete: true,
    },
  })
  return table.split('\n').find((l) => l.includes('mailbox(es) paused'))
}

test('a throttle keeps its words', () => {
  expect(pausedLine(['ApplicationThrottled', 'mailbox_paused'])).toBe(
    'default: 1 mailbox(es) paused by a provider throttle, the longest for 4m0s more',
  )
})

test('a mailbox Graph refuses (a mistyped MAIL_FROM: 404 ErrorInvalidUser; the app not let send from it: 403) is said, with its code, not as a throttle alone', () => {
  const refused = (codes: string) =>
    `default: 1 mailbox(es) paused by a provider throttle or by Graph refusing a mailbox (${codes} above: check MAIL_FROM, and that the mailbox exists, is licensed and the app may send from it), the longest for 4m0s more`
  expect(pausedLine(['mailbox_paused', 'ErrorInvalidUser'])).toBe(refused('ErrorInvalidUser'))
  expect(pausedLine(['ErrorAccessDenied'])).toBe(refused('ErrorAccessDenied'))
  expect(pausedLine(['http_404', 'ApplicationThrottled'])).toBe(refused('http_404'))
})
