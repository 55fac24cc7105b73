// The two throttle counts: outbox_sends_total counts rows (one 429 may send back many), outbox_graph_throttled_total the sends and lookups told to wait; their help and the docs say which.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createMetricFamilies } from '../../src/api/metric-families.ts'
import { ROOT } from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')

async function helpOf(name: string): Promise<string> {
  const text = await createMetricFamilies().registry.metrics()
  return new RegExp(`^# HELP ${name} (.*)$`, 'm').exec(text)?.[1] ?? ''
}

test('outbox_sends_total says it counts rows, every row a throttle sent back, and where the answers are counted', async () => {
  // A walk read outbox_sends_total{outcome="throttled"} 5 for one Graph 429 (the send it answered
  // and four rows its mailbox's pause sent back) and took it for five throttles.
  const help = await helpOf('outbox_sends_total')
  expect(help).toContain('one per row')
  expect(help).toContain('one 429 can add many')
  expect(help).toContain('outbox_graph_throttled_total')
})

test('outbox_graph_throttled_total says it counts the sends and lookups told to wait, not the rows held back behind them', async () => {
  const help = await helpOf('outbox_graph_throttled_total')
  expect(help).toContain('one per send or lookup')
  expect(help).toContain('outbox_sends_total{outcome="throttled"}')
})

test('the README and the deploy guide say which of the two counts rows', () => {
  const says = (doc: string) =>
    doc.includes('`outbox_sends_total{outcome}` (rows') &&
    // The README names its label as it does outbox_sends_total's.
    /`outbox_graph_throttled_total(\{cause,service\})?` \(one per send or lookup/.test(doc)
  expect({ readme: says(readme), guide: says(guide) }).toEqual({ readme: true, guide: true })
})
