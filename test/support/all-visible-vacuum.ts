// Vacuums the outbox until the visibility map marks every page, as index-only reads of kept rows assume.
import type pg from 'pg'
import { pollUntil } from './events.ts'

/**
 * A vacuum marks a page all-visible only when no snapshot of this database could still miss one of
 * its rows. An autoanalyze the inserts made due, begun before their last commit, holds such a
 * snapshot for its run: a vacuum meanwhile leaves those pages unmarked, and an index-only scan then
 * reads the heap after all (a full run on a loaded machine: 101 heap pages where ≤ 2 were expected).
 * So vacuum again until pg_class says every page is marked (a bounded poll).
 */
export async function vacuumAllVisible(pool: pg.Pool): Promise<void> {
  await pollUntil(
    async () => {
      await pool.query('vacuum (analyze) mailer.email_outbox')
      const { rows } = await pool.query<{ pages: number; visible: number }>(
        `select relpages as pages, relallvisible as visible
           from pg_class where oid = 'mailer.email_outbox'::regclass`,
      )
      return rows[0]!.visible >= rows[0]!.pages ? true : undefined
    },
    60_000,
    100,
  )
}
