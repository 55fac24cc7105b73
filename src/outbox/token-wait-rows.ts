// The rows given back for want of a provider token, brought due once a token comes: the credential works again.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { everyRowMadeDue, ROWS_MADE_DUE_PER_STATEMENT, rowsMadeDue } from './rows-made-due.ts'
import { NO_TOKEN_CODE, PACED_CODE } from './settle-item.ts'
import type { SideStatements } from './side-statements.ts'

/**
 * A row a claim met while Entra refused the credential (or was down) went back to the end of the
 * token source's hold-off (a minute for a refusal, up to 5 for an outage: its send_at moved there),
 * one batch per worker at each hold-off, those due longest first: once a token comes (the secret
 * fixed and the machine restarted, or the certificate uploaded), those oldest rows would still wait
 * that out while rows enqueued since went at once. Such rows come due now (rows-made-due.ts). A row
 * whose interrupted send is still to be looked up comes due too: its lookup waited for the same
 * token, and its claim looks it up before any send. email_outbox_pending_error_idx (sql/0173).
 */
const waitedForToken = sql`o.last_error_code is not null and o.last_error_code <> ${PACED_CODE}
  and o.last_error_code ~ ${NO_TOKEN_CODE}`

/** Up to `limit` rows that waited for a token are due now. Returns how many came due. */
export async function tokenWaitRowsDue(
  db: Kysely<Database>,
  limit = ROWS_MADE_DUE_PER_STATEMENT,
): Promise<number> {
  return (await rowsMadeDue(db, waitedForToken, limit)).due
}

/** tokenWaitRowsDue, statement after statement while one brings `limit` due. Returns the total. */
export async function everyTokenWaitRowDue(
  db: Kysely<Database>,
  limit = ROWS_MADE_DUE_PER_STATEMENT,
): Promise<number> {
  return (await everyRowMadeDue((n) => rowsMadeDue(db, waitedForToken, n), limit)).due
}

/**
 * What a worker does when a token comes after none (the process's first, or the first after a
 * failure): brings the rows waiting for one due (beside its claims: its stop waits for it), and
 * wakes itself when any came due. A failure leaves them to their own wait's end, as before.
 */
export function createTokenCame(d: {
  db: Kysely<Database>
  log: Logger
  besides: SideStatements
  stopping: AbortSignal
  wake: () => void
}): () => void {
  return () => {
    if (d.stopping.aborted) return
    void d.besides.track(
      everyTokenWaitRowDue(d.db).then(
        (due) => {
          if (due === 0) return
          d.log.info('rows that waited for a Graph token are due now', { count: due })
          d.wake()
        },
        (err: unknown) =>
          d.log.warn('could not bring due the rows that waited for a Graph token', { err }),
      ),
    )
  }
}
