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
