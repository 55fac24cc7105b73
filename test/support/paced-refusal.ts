// What the pacing-under-refusal tests read and fault: Entra's expired-secret refusal, the statement that gives the turns up, and the rows and turns as status and GET /v1/outbox show them.
import type { TestDb } from './db.ts'

/** An expired client secret: the refusal an operator meets when one runs out. */
export const EXPIRED = { status: 401, error: 'invalid_client', aadsts: 7000222 }

/** The statement that gives the turns up once everyone is refused (paced-rows-blocked.ts). */
export const GIVE_UP_ASK = "delete from mailer.mailbox_pacing where mailbox like 'queue %'"

/** The outbox's rows and pacing turns of `t`, read as a test waits on them. */
export function pacedReads(t: TestDb) {
  return {
    count: async (where: string) =>
      (
        await t.pool.query<{ n: number }>(
          `select count(*)::int as n from mailer.email_outbox where ${where}`,
        )
      ).rows[0]!.n,

    /** Mailboxes with turns reserved for rows sent back to wait for them (reservePacing's horizon). */
    reservedTurns: async () =>
      (
        await t.pool.query<{ n: number }>(
          `select count(*)::int as n from mailer.mailbox_pacing where mailbox like 'queue %'`,
        )
      ).rows[0]!.n,

    /**
     * What GET /v1/outbox shows of the pending rows: their code, due or not, and (`words`) whether
     * their error carries Entra's words.
     */
    pendingRows: async (o: { words?: boolean } = {}) =>
      (
        await t.pool.query(
          o.words
            ? `select last_error_code as code, last_error ~ '^invalid_client: AADSTS7000222' as words,
                      send_at <= now() as due, count(*)::int as n
                 from mailer.email_outbox where status = 'pending' group by 1, 2, 3 order by 1, 3`
            : `select last_error_code as code, send_at <= now() as due, count(*)::int as n
                 from mailer.email_outbox where status = 'pending' group by 1, 2 order by 1, 2`,
        )
      ).rows,
  }
}
