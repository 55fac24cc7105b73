// The chaos's cancels and retries through the API, and the rows a retry may take back.
import type { Database } from '../harness.ts'
import type { ChaosRun } from './chaos-run.ts'

export async function cancelRow({ mailers, record }: ChaosRun, id: string): Promise<void> {
  record.cancelAsked.add(id)
  record.note('cancel asked', [id])
  const res = await mailers.api
    .api(`/v1/outbox/${id}/cancel`, { method: 'POST', signal: AbortSignal.timeout(5_000) })
    .catch(() => null)
  record.note(`cancel answered ${res?.status ?? 'nothing'}`, [id])
  if (!res || res.status >= 500) record.figures.unanswered++
  if (res?.status === 200 || res?.status === 202) {
    record.cancelledAt.set(id, Date.now())
    record.figures.cancels++
  }
}

export async function retryCandidates(db: Database): Promise<string[]> {
  const rows = await db.q<{ id: string }>(
    `select id::text from mailer.email_outbox where status in ('failed', 'cancelled')
      order by id limit 50`,
  )
  return rows.map((r) => r.id)
}

export async function retryRow({ mailers, record }: ChaosRun, id: string): Promise<void> {
  record.note('retry asked', [id])
  const res = await mailers.api
    .api(`/v1/outbox/${id}/retry`, { method: 'POST', signal: AbortSignal.timeout(5_000) })
    .catch(() => null)
  record.note(`retry answered ${res?.status ?? 'nothing'}`, [id])
  if (!res || res.status >= 500) record.figures.unanswered++
  if (res?.status === 200) {
    record.retriedAt.set(id, [...(record.retriedAt.get(id) ?? []), Date.now()])
    record.figures.retries++
  }
}

/**
 * The rows an owed probe waits for: the probe out (probe_id), else MAIL_FROM's first rows
 * scheduled (no sender key or the key of the owed mailbox, pending, by send_at). Reads by the
 * pacing table's rows owed and a scan of the pending rows: the harness's read, not the product's.
 */
export async function probeRows(db: Database): Promise<string[]> {
  const rows = await db.q<{ id: string }>(
    `select p.probe_id::text as id from mailer.mailbox_pacing p where p.probe_owed and p.probe_id is not null
     union all
     (select o.id::text from mailer.email_outbox o
       where o.status = 'pending'
         and exists (select 1 from mailer.mailbox_pacing p where p.probe_owed
                      and (o.sender_key is null or o.sender_key = p.mailbox))
       order by o.send_at, o.id limit 3)`,
  )
  return rows.map((r) => r.id)
}

/** A probe's row cancelled through the API, and with `cancelThenRetry` made due again by a retry. */
export async function probeRowCommand(
  run: ChaosRun,
  id: string,
  how: 'cancel' | 'cancelThenRetry',
): Promise<void> {
  run.record.figures.probeCommands++
  run.record.note(`probe's row: ${how}`, [id])
  await cancelRow(run, id)
  if (how === 'cancelThenRetry') await retryRow(run, id)
}
