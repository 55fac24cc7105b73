// The words saying a send's outcome is unknown (whether it delivered the row, no one can tell yet): one phrasing per meaning, every last_error and history entry that says so built from here.

/*
 * Each is a clause that follows the writer's own words after "; " (may-have-delivered.ts
 * afterWords). A stop says so (the row goes on, the send's mark kept for a lookup or a retry), and
 * a cancel whose lookup could not tell (the row ends, its mark kept); an ending that names which
 * send may have delivered the row says so in may-have-delivered.ts's words instead. Rows and
 * history entries keep the words they were written with: a reader of an older binary's entry
 * (no kind) matches history-kind.ts's OLD_* (never these), and one of this binary's reads its
 * kind, so these may be reworded.
 */

/**
 * The send the words before name: the one a worker stopped during, the interrupted send whose
 * lookup's worker stopped, or that a cancel could not look up.
 */
export const OUTCOME_UNKNOWN = 'outcome unknown'

/**
 * An interrupted send before the attempt the words name, which sent nothing: with lookups off, a
 * counted claim's stop before it sent the row again.
 */
export const EARLIER_SEND_OUTCOME_UNKNOWN = "the earlier interrupted send's outcome unknown"
