// `bun run bench/template-filter.ts [kept] [enqueued]`: what `GET /v1/outbox?template=…` reads on a kept outbox, and what a template index costs an enqueue.
//
// Fills `kept` finished rows (default 200,000, 1 KB bodies, one in 50 failed) of which one in ten
// came from template `newsletter` and 50 of the oldest from `rare`, as a trigger would have left
// them; then runs the list's statement (src/outbox/inspect.ts's listStatement: the filter, newest
// first by id, a page of 50 and one more) with EXPLAIN (ANALYZE, BUFFERS) for a common template,
// a rare one and one that matches nothing, alone and with `status`. Then enqueues `enqueued` rows
// (default 2,000) through a template trigger and as many through mailer.enqueue_email, one
// transaction each, settles each as sent, and reports the WAL per row of each. With `--index` it
// builds migration 0045's index first (run once with and once without to compare: the same tree,
// only the index differs).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { migrate } from '../src/db/migrate.ts'
import { migrations } from '../src/db/migrations.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { listStatement } from '../src/outbox/inspect.ts'
import type { OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { startBenchCluster } from './cluster.ts'
import { fillKept } from './kept-rows.ts'
import { explainList } from './list-plan.ts'
import { openProbe } from './systems/probe.ts'

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const withIndex = process.argv.includes('--index')
const kept = Number(args[0] ?? 200_000)
const enqueued = Number(args[1] ?? 2_000)
const cluster = await startBenchCluster()
const name = 'outbox_templates'
await cluster.createDatabase(name)
// Every migration but 0045 (the index), built below when asked, so both runs share everything else
// (the list statement reads columns of later ones: up to 0042 alone, it failed on workers.lease_key).
await migrate({
  url: cluster.url(name),
  log: silentLogger,
  migrations: migrations.filter((m) => m.version !== 45),
})
const probe = await openProbe(cluster.url(name))
try {
  await fillKept(probe, { kept, textBytes: 1024, failedEvery: 50 })
  await probe.query(
    `update mailer.email_outbox set template = 'newsletter', message = null, source_row = jsonb_build_object('id', id) where id % 10 = 0`,
  )
  await probe.query(
    `update mailer.email_outbox set template = 'rare', message = null, source_row = jsonb_build_object('id', id) where id <= 50`,
  )
  await probe.query('vacuum (freeze, analyze) mailer.email_outbox')
  if (withIndex) {
    const text = await readFile(join(import.meta.dir, '../sql/0045_template_index.sql'), 'utf8')
    for (const s of text.split('--! split')) await probe.query(s.replace(/^--.*$/gm, ''))
    await probe.query('analyze mailer.email_outbox')
  }
  console.log(`kept ${kept} rows; template index: ${withIndex ? 'yes' : 'no'}`)
  const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
  const cases: [string, OutboxFilter][] = [
    ['template=newsletter', { template: 'newsletter' }],
    ['template=rare', { template: 'rare' }],
    ['template=absent', { template: 'absent' }],
    ['template=rare&status=sent', { template: 'rare', status: ['sent'] }],
    ['template=rare&status=failed', { template: 'rare', status: ['failed'] }],
    ['template=absent&status=pending', { template: 'absent', status: ['pending'] }],
  ]
  for (const [label, filter] of cases) {
    const q = listStatement(handle.db, filter, { limit: 50 }, null)!.compile(handle.db)
    const { executionMs, buffers, removed, how } = await explainList(probe, q)
    console.log(
      `${label.padEnd(32)} ${executionMs.toFixed(2).padStart(8)} ms  buffers ${String(buffers).padStart(6)}  rows removed by filter ${String(removed).padStart(7)}  ${how.join(', ')}`,
    )
  }
  await handle.close()
  await probe.query(`insert into mailer.templates (name, subject, text_body, to_addresses)
                     values ('inquiry', 'Inquiry {{id}}', 'From {{name}}', array['ops@example.com'])`)
  await probe.query('create table public.inquiries (id bigserial primary key, name text)')
  await probe.query(`create trigger inquiries_mail after insert on public.inquiries
                     for each row execute function mailer.enqueue_from_row('inquiry')`)
  const lsn = async () =>
    (await probe.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn'))[0]!.lsn
  const since = async (from: string) =>
    Number(
      (
        await probe.query<{ n: string }>(
          'select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)::bigint::text as n',
          [from],
        )
      )[0]!.n,
    ) / enqueued
  // Per row: its enqueue, then its settlement as sent (the update a worker's settle makes of its
  // status; the entry 0045 adds, if any, comes with it). One transaction each; a checkpoint first,
  // so neither pays the full-page images the other one's checkpoint would have left to it.
  const wal = async (text: string) => {
    await probe.query('checkpoint')
    const [top] = await probe.query<{ id: string }>(
      'select coalesce(max(id), 0)::text as id from mailer.email_outbox',
    )
    const a = await lsn()
    for (let i = 0; i < enqueued; i++) await probe.query(text, [i])
    const enqueue = await since(a)
    const ids = await probe.query<{ id: string }>(
      'select id::text from mailer.email_outbox where id > $1 order by id',
      [top!.id],
    )
    await probe.query('checkpoint')
    const b = await lsn()
    for (const { id } of ids)
      await probe.query(
        `update mailer.email_outbox set status = 'sent', sent_at = now(), attempts = 1 where id = $1`,
        [id],
      )
    return { enqueue, settle: await since(b) }
  }
  const templated = await wal(`insert into public.inquiries (name) values ('n' || $1::int)`)
  const untemplated = await wal(
    `select mailer.enqueue_email(jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't' || $1::int))`,
  )
  const f = (w: { enqueue: number; settle: number }) =>
    `enqueue ${w.enqueue.toFixed(0)} B, settled sent ${w.settle.toFixed(0)} B`
  console.log(
    `WAL per row, templated: ${f(templated)}; untemplated: ${f(untemplated)} (${enqueued} each)`,
  )
} finally {
  await probe.close()
  await cluster.stop()
}
