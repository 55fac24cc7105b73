// The database-wide gauges, which every machine exports alike: their help, the README and the deploy guide's rules aggregate them with max, never sum.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createMetricFamilies } from '../../src/api/metric-families.ts'
import { ROOT } from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** Read from the database at each scrape: every process reports the same numbers for a database. */
const DATABASE_WIDE = [
  'outbox_rows',
  'outbox_oldest_pending_age_seconds',
  'outbox_notification_queue_usage',
  'outbox_mailboxes_paused',
  'outbox_mailboxes_paused_refused',
  'outbox_refused_mailbox_pending',
  'outbox_pending_held_back',
  'outbox_pending_past_expiry',
]

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')

test('their help says every process exports them alike, and to aggregate with max', async () => {
  const text = await createMetricFamilies().registry.metrics()
  for (const name of DATABASE_WIDE) {
    const help = new RegExp(`^# HELP ${name} (.*)$`, 'm').exec(text)?.[1] ?? ''
    expect([name, help]).toEqual([
      name,
      expect.stringContaining('every process exports the same reading: aggregate with max'),
    ])
  }
})

test('the README and the deploy guide say how to count them across machines', () => {
  const says = (doc: string) => doc.includes('`max by (db, status) (outbox_rows)`')
  expect({ readme: says(readme), guide: says(guide) }).toEqual({ readme: true, guide: true })
})

test('no query in the README or the deploy guide sums them', () => {
  // A sum over the machines counts each database once per machine scraped.
  const summed = [readme, guide].flatMap((doc) =>
    [...doc.matchAll(/\bsum\b[^`|]*/g)]
      .map((m) => m[0])
      .filter((q) => DATABASE_WIDE.some((name) => q.includes(name))),
  )
  expect(summed).toEqual([])
})
