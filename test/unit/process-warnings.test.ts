// Process warnings reach the JSON-lines log as one line each, of every kind, their text masked; or a report, as one line of text each.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { collectProcessWarnings, logProcessWarnings } from '../../src/process-warnings.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('a multi-line warning and a deprecation are each one JSON line at warn, a secret in the text masked', async () => {
  const lines: string[] = []
  const secret = `s3cret-${process.pid}`
  const undo = logProcessWarnings(
    createLogger('debug', (l) => lines.push(l)),
    (s) => s.replaceAll(secret, '***'),
  )
  try {
    process.emitWarning(`SECURITY WARNING: first line\nsecond line naming ${secret}`)
    process.emitWarning('an old API', 'DeprecationWarning', 'DEP0999')
    // Emitted on the next tick, not at the call.
    await pollUntil(async () => (lines.length >= 2 ? true : undefined), 5_000)
  } finally {
    undo()
  }
  for (const line of lines) expect(line).not.toContain('\n')
  expect(lines.join('')).not.toContain(secret)
  expect(lines.map((l) => JSON.parse(l))).toEqual([
    expect.objectContaining({
      level: 'warn',
      msg: 'process warning',
      warning: 'Warning',
      detail: 'SECURITY WARNING: first line\nsecond line naming ***',
    }),
    expect.objectContaining({
      level: 'warn',
      msg: 'process warning',
      warning: 'DeprecationWarning',
      code: 'DEP0999',
      detail: 'an old API',
    }),
  ])
})

test('the undo gives the runtime its own printer back', () => {
  const before = process.listeners('warning')
  const undo = logProcessWarnings(createLogger('debug', () => {}))
  expect(process.listeners('warning')).not.toEqual(before)
  undo()
  expect(process.listeners('warning')).toEqual(before)
})

test('collected for a report, each warning is one line of text, its kind named unless plain, a secret masked', async () => {
  const secret = `s3cret-${process.pid}`
  const collected = collectProcessWarnings((s) => s.replaceAll(secret, '***'))
  try {
    process.emitWarning(`SECURITY WARNING: first line\n\nsecond line naming ${secret}\n`)
    process.emitWarning('an old API', 'DeprecationWarning', 'DEP0999')
    expect(await collected.settled()).toEqual([
      'SECURITY WARNING: first line second line naming ***',
      'DeprecationWarning DEP0999: an old API',
    ])
  } finally {
    collected.undo()
  }
})
