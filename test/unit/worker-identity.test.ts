// The worker id serve names a process by: host and pid readable, a short random part, a deployment's length.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { workerIdentity } from '../../src/outbox/worker-identity.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('the id names the host and the pid, then 6 random hex digits', () => {
  const w = workerIdentity('e286de4f711986', 313, '1.2.3')
  expect(w).toMatchObject({ host: 'e286de4f711986', pid: 313, version: '1.2.3' })
  expect(w.id).toMatch(/^e286de4f711986:313:[0-9a-f]{6}$/)
})

test('two processes on one host with one pid (a restarted container) get different ids', () => {
  const ids = new Set(Array.from({ length: 50 }, () => workerIdentity('h', 1, 'v').id))
  expect(ids.size).toBe(50)
})

// Each attempt's history carries it (worker_id; the claimed row only the worker's lease key, since
// round 37): on a Fly machine (14-hex host) with a 5-digit pid it is 27 characters.
test('on a Fly machine with a 5-digit pid the id is 27 characters', () => {
  expect(workerIdentity('e286de4f711986', 12345, 'v').id).toHaveLength(27)
})
