// status's line of the paused mailboxes is worded by each pause's own cause (sql/0172): a provider throttle, or Graph refusing the mailbox.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { oneDatabaseTable } from '../support/one-database-table.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** The table's line of `count` paused mailboxes, `refused` of them by Graph refusing them, `refusedPending` rows sending from those. */
function pausedLine(count: number, refused: number, refusedPending = 0): string | undefined {
  const table = oneDatabaseTable({
    pausedMailboxes: { count, longestSeconds: 240, refused, refusedPending },
    // A refusal's code among the pending rows says nothing of the pauses standing now.
    pendingLastErrors: {
      total: 1,
      byCode: [{ code: 'ErrorInvalidUser', rows: 1 }],
      complete: true,
    },
  })
  return table.split('\n').find((l) => l.includes('mailbox(es) paused'))
}

const REFUSAL =
  "by Graph refusing it (check MAIL_FROM or the rows' own from, and that the mailbox exists, is licensed and the app may send from it)"

test('throttles keep their words, whatever codes the pending rows hold', () => {
  expect(pausedLine(2, 0)).toBe(
    'default: 2 mailbox(es) paused by a provider throttle, the longest for 4m0s more',
  )
})

test('a mailbox Graph refuses (a mistyped MAIL_FROM: 404 ErrorInvalidUser; the app not let send from it: 403) is said as that, alone or beside throttles', () => {
  expect(pausedLine(1, 1)).toBe(
    `default: 1 mailbox(es) paused ${REFUSAL}, 0 pending row(s) sending from a refused one, the longest for 4m0s more`,
  )
  expect(pausedLine(3, 1, 4)).toBe(
    `default: 3 mailbox(es) paused: 2 by a provider throttle, 1 ${REFUSAL}, 4 pending row(s) sending from a refused one, the longest for 4m0s more`,
  )
})

test("a refused mailbox may be one rows name themselves (a template's from_address, 403 ErrorAccessDenied): the words do not send the operator to MAIL_FROM alone", () => {
  // status never says which mailbox is paused: the words cover both.
  expect(pausedLine(1, 1)).toContain("check MAIL_FROM or the rows' own from,")
})
