// What a row waiting to look its interrupted send up says of itself: pending, its mark kept, and whether it is due past its expiresAt.
import type { TestDb } from './db.ts'
import { rowOf } from './engine.ts'

/** Row `id` read now: compare with `{ status: 'pending', marked: true, dueAfterExpiry: true }`. */
export async function lookupWaitOf(
  t: TestDb,
  id: string,
): Promise<{ status: unknown; marked: boolean; dueAfterExpiry: boolean }> {
  const row = await rowOf(t, id)
  return {
    status: row.status,
    marked: row.send_started_at !== null,
    dueAfterExpiry: row.send_at > row.expires_at,
  }
}

/** A row waiting past its expiresAt to be looked up (lookupWaitOf). */
export const WAITING_PAST_EXPIRY = { status: 'pending', marked: true, dueAfterExpiry: true }
