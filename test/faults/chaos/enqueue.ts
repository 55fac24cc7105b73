// The chaos's enqueues: a batch through SQL, and one row through the API with an Idempotency-Key repeated after a lost answer.
import type { ChaosRun } from './chaos-run.ts'
import type { RowSpec } from './schedule.ts'

export async function enqueueSql({ db, record }: ChaosRun, batch: RowSpec[]): Promise<void> {
  const rows = await db.q<{ id: string; expires: string | null }>(
    `select mailer.enqueue_email(m -> 'message', m -> 'options')::text as id,
            m -> 'options' ->> 'expiresAt' as expires
       from jsonb_array_elements($1::jsonb) m`,
    [JSON.stringify(batch)],
  )
  for (const r of rows) {
    record.known.add(r.id)
    if (r.expires) record.expiresAtOf.set(r.id, Date.parse(r.expires))
  }
  record.note(
    'enqueued (SQL)',
    rows.map((r) => r.id),
  )
  record.figures.enqueued += rows.length
}

/** Posts the row three times with one key: every answer must name the same id. */
export async function enqueueApi(
  { mailers, record }: ChaosRun,
  spec: RowSpec,
  key: string,
): Promise<void> {
  const ids = new Set<string>()
  for (let i = 0; i < 3; i++) {
    const res = await mailers.api
      .api('/v1/outbox', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(spec),
        signal: AbortSignal.timeout(5_000),
      })
      .catch(() => null)
    if (res && (res.status === 201 || res.status === 200)) {
      const { id } = (await res.json()) as { id: string }
      record.note(`enqueued (API, key ${key}): ${res.status}`, [id])
      ids.add(id)
      record.known.add(id)
      if (spec.options.expiresAt) record.expiresAtOf.set(id, Date.parse(spec.options.expiresAt))
    }
  }
  if (ids.size > 1)
    record.problems.push(`Idempotency-Key ${key} answered different ids: ${[...ids]}`)
  if (ids.size > 0) record.figures.enqueued++
}
