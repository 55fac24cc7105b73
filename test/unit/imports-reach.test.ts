// The preload's test of whether a run's first file needs the cluster: its imports, followed through relative paths.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { importsReach } from '../support/imports-reach.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const preload = resolve(import.meta.dir, '../preload.ts')
const at = (file: string) => resolve(import.meta.dir, '..', file)

test('a file reaching the preload through support modules needs the cluster; one that does not, none', () => {
  // auth.test.ts imports ../support/db.ts, which imports the preload's testCluster.
  expect(importsReach(at('api/auth.test.ts'), preload)).toBe(true)
  // The fault harness reaches it only through its own imports.
  expect(importsReach(at('faults/harness.ts'), preload)).toBe(true)
  expect(importsReach(at('unit/log.test.ts'), preload)).toBe(false)
  // This file reads the preload's path but imports only the scanner.
  expect(importsReach(import.meta.path, preload)).toBe(false)
})
