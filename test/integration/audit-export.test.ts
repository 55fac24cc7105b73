// The deploy guide's audit export, run as written: one line per attempt, rows never tried included, no address or subject.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../deploy/deploy-files.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

function exportQuery(): string {
  const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
  const block = /an export for audit[\s\S]*?```sql\n([\s\S]*?)```/.exec(guide)?.[1]
  if (!block) throw new Error('deploy/README.md step 9 has no audit export query')
  // Its month, moved to the one this test's rows were written in.
  const month = (d: Date) => `${d.toISOString().slice(0, 7)}-01T00:00:00Z`
  const now = new Date()
  const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1))
  const bounds: Record<string, string> = {
    "'2026-11-01T00:00:00Z'": `'${month(now)}'`,
    "'2026-12-01T00:00:00Z'": `'${month(next)}'`,
  }
  return block.replace(/'2026-1[12]-01T00:00:00Z'/g, (b) => bounds[b] ?? b)
}

test("the deploy guide's audit export lists each attempt and each row never tried, with ids and codes only", async () => {
  const enqueue = async (to: string) =>
    (
      await t.pool.query('select mailer.enqueue_email($1::jsonb)::text as id', [
        JSON.stringify({ to, subject: 'Quarterly invoice', text: 'Dear customer' }),
      ])
    ).rows[0].id as string
  const sent = await enqueue('sent@example.com')
  const cancelled = await enqueue('cancelled@example.com')
  await t.pool.query(
    `update mailer.email_outbox set status = 'sent', attempts = 2, sent_at = now() where id = $1`,
    [sent],
  )
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, outcome, http_status, request_id, error_code)
     values ($1, 1, 'retry', 503, 'graph-req-1', 'ServiceUnavailable'), ($1, 2, 'sent', 202, 'graph-req-2', null)`,
    [sent],
  )
  await t.pool.query(
    `update mailer.email_outbox set status = 'cancelled', cancel_requested_at = now() where id = $1`,
    [cancelled],
  )

  const { rows } = await t.pool.query(exportQuery())
  const mine = rows.filter((r) => [sent, cancelled].includes(String(r.id)))
  expect(mine.map((r) => [String(r.id), r.status, r.attempt, r.outcome, r.request_id])).toEqual([
    [sent, 'sent', 1, 'retry', 'graph-req-1'],
    [sent, 'sent', 2, 'sent', 'graph-req-2'],
    [cancelled, 'cancelled', null, null, null],
  ])
  const text = JSON.stringify(rows)
  for (const personal of ['@example.com', 'Quarterly invoice', 'Dear customer']) {
    expect(text).not.toContain(personal)
  }
})
