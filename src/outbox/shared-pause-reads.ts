// Shared pause reads: sends asking at once about one mailbox's pause share one read of it.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import { mailboxPausedFor } from './mailbox-pause.ts'

/**
 * Sends asking at once about one mailbox's pause share one read: they then reach the slots
 * together, and one statement takes slots for all of them.
 */
export function createSharedPauseReads(
  db: Kysely<Database>,
): (mailbox: string) => ReturnType<typeof mailboxPausedFor> {
  const pauseReads = new Map<string, ReturnType<typeof mailboxPausedFor>>()
  return function pausedFor(mailbox) {
    let read = pauseReads.get(mailbox)
    if (!read) {
      read = mailboxPausedFor(db, { mailbox }).finally(() => pauseReads.delete(mailbox))
      pauseReads.set(mailbox, read)
    }
    return read
  }
}
