// What the pacing-under-refusal tests start, read and fault: a worker pacing its rows, Entra's expired-secret refusal, the statement that gives the turns up, and the rows and turns as status and GET /v1/outbox show them.
import type { TestDb } from './db.ts'
import { pollUntil } from './events.ts'
import { generateTestCertificate } from './fake-graph.ts'
import { type OutageRun, startOutage } from './token-outage.ts'

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

/**
 * A worker of `t` pacing one a minute, 10 rows held an hour ahead (rowsPaced brings them due), Entra
 * issuing tokens. `deps`: its statements' Kysely; `notesRefusal`: its entry notes a refusal, as
 * `serve` wires it.
 */
export async function startPaced(
  t: TestDb,
  o: { deps?: Parameters<typeof startOutage>[1]['deps']; notesRefusal?: true } = {},
): Promise<OutageRun> {
  return startOutage(t, {
    rows: 10,
    cert: await generateTestCertificate(),
    tokenFault: null,
    ratePerMinute: 1,
    options: () => ({ sendAt: new Date(Date.now() + 3600_000).toISOString() }),
    ...(o.deps && { deps: o.deps }),
    ...(o.notesRefusal && { notesRefusal: o.notesRefusal }),
  })
}

/**
 * The held rows brought due: returns once one is sent (while the token serves) and the other nine
 * are sent back to turns a minute apart, nothing in flight.
 */
export async function rowsPaced(t: TestDb, r: OutageRun): Promise<void> {
  const { count } = pacedReads(t)
  await t.pool.query(`update mailer.email_outbox set send_at = now() - interval '1 hour'`)
  r.engine.drainer.wake()
  await pollUntil(async () => {
    if (r.engine.drainer.status().inFlight > 0) return undefined
    if ((await count(`status = 'sent'`)) < 1) return undefined
    return (await count(`last_error_code = 'mailbox_paced'`)) === 9 ? true : undefined
  }, 30_000)
}
