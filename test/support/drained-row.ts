// One row drained to its end by a worker: the worker started, the row polled until sent, failed or cancelled, and its history without the lookups asked again too early.
import type { TestDb } from './db.ts'
import { attemptsOf, rowOf, type TestEngine } from './engine.ts'
import { pollUntil } from './events.ts'

/**
 * Starts `engine` and waits (within `withinMs`, bounded for a loaded machine) for row `id` to end;
 * its row, and its history's `columns` (error_code among them) less the lookups asked again before
 * the grace was out: uncounted waits, as many as the timing makes.
 */
export async function drainedToEnd(
  t: TestDb,
  engine: TestEngine,
  id: string,
  withinMs: number,
  columns: string,
) {
  await engine.start()
  const row = await pollUntil(async () => {
    const r = await rowOf(t, id)
    return ['sent', 'failed', 'cancelled'].includes(r.status) ? r : undefined
  }, withinMs)
  const history = (await attemptsOf(t, id, columns)).filter(
    (h: { error_code: string | null }) => h.error_code !== 'lookup_too_early',
  )
  return { row, history }
}
