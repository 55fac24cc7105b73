// The words saying a send's outcome is unknown (whether it delivered the row, no one can say yet): one phrasing per meaning, every last_error and history entry that says so built from here.

/*
 * Each is a clause that follows the writer's own words after "; " (may-have-delivered.ts
 * afterWords). They say a send is left unresolved where the row goes on (a stop: its mark kept for a
 * lookup or a retry) or where a cancel ends it unlooked; an ending that names the send that may
 * have delivered the row says so in may-have-delivered.ts's words. Rows and history entries keep the
 * words they were written with: a reader of an older binary's entry matches history-kind.ts's OLD_*
 * (never these), and this binary's by its kind, so these may be reworded.
 */

/**
 * The send the words before name: the one a worker stopped during, the interrupted send whose
 * lookup's worker stopped, or that a cancel could not look up.
 */
export const OUTCOME_UNKNOWN = 'outcome unknown'

/**
 * An interrupted send before the attempt the words name, which sent nothing: a counted claim's
 * stop before it sent the row again (lookups off).
 */
export const EARLIER_SEND_OUTCOME_UNKNOWN = "the earlier interrupted send's outcome unknown"

/** The interrupted send a cancel could not look up, after ": " (merged into OUTCOME_UNKNOWN next). */
export const WHETHER_IT_DELIVERED_UNKNOWN = 'whether it delivered the message is unknown'
