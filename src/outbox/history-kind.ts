// What an attempt history entry records (email_attempts.kind, sql/0189), and how an entry of a binary before 0189 (kind NULL) is read by its words instead.
import { type RawBuilder, sql } from 'kysely'

/** Every kind an entry may carry (email_attempts_kind_check); sql/0189 says what each records. */
export const HISTORY_KINDS = [
  'attempt',
  'resent',
  'resent_interrupted',
  'unresolved',
  'stopped_before_send',
  'stopped_during_send',
  'stopped_looking_up',
  'stopped_before_resend',
] as const

export type HistoryKind = (typeof HISTORY_KINDS)[number]

/** A kind as an SQL literal, checked against HISTORY_KINDS by the compiler. */
export const kindLit = (kind: HistoryKind) => sql.lit(kind)

/**
 * The kind of an entry of outcome `outcome` whose column reads `stored`: a sent entry's is always
 * an attempt's, implied rather than stored (sql/0189: the drain writes one per row); null, an
 * older binary's entry.
 */
export const kindOf = (outcome: string, stored: string | null): HistoryKind | null =>
  // email_attempts_kind_check holds a stored kind to HISTORY_KINDS.
  outcome === 'sent' ? 'attempt' : (stored as HistoryKind | null)

/** kindOf in SQL, of a history entry `alias`. */
const entryKind = (alias: string) =>
  sql<HistoryKind | null>`coalesce(${sql.ref(`${alias}.kind`)},
    case when ${sql.ref(`${alias}.outcome`)} = 'sent' then ${kindLit('attempt')} end)`

/**
 * Of a history entry `alias`: `current`, a condition on its kind, or, for an entry an older binary
 * wrote (no kind), `words`, a condition on its text as those releases worded it. Never null.
 */
export const byKind = (alias: string, current: RawBuilder<boolean>, words: RawBuilder<boolean>) =>
  sql<boolean>`coalesce(case when ${entryKind(alias)} is null then ${words} else ${current} end, false)`

/** Of a history entry `alias`: its kind is one of `kinds` (an older binary's entry: never). */
export const kindIn = (alias: string, kinds: readonly HistoryKind[]) =>
  sql<boolean>`${entryKind(alias)} in (${sql.join(kinds.map(kindLit))})`

/** Of a history entry `alias`: its kind is `kind`. */
export const kindIs = (alias: string, kind: HistoryKind) =>
  sql<boolean>`${entryKind(alias)} = ${kindLit(kind)}`

/** Of a history entry `alias`: an older binary wrote it (no kind, stored or implied). */
export const kindUnknown = (alias: string) => sql<boolean>`${entryKind(alias)} is null`

/*
 * The words of the releases before 0189, which no longer change: how their entries are told apart.
 * The words the binary writes now live beside their writers (may-have-delivered.ts,
 * outcome-unknown.ts) and may be reworded freely, so long as a reader that strips them takes these
 * too (resent-unverified.ts).
 */
/** A lookup's stop: lookup-stop.ts's LOOKUP_STOPPED and CANCEL_LOOKUP_STOPPED begin so. */
export const OLD_LOOKING_UP_STOPPED = 'the worker looking up its interrupted send stopped'
/** A counted claim's stop before it sent a marked row again (STOPPED_BEFORE_SENDING_AGAIN). */
export const OLD_BEFORE_SENDING_AGAIN = 'the worker holding the lease stopped before sending again'
/** A stop during the send: the reclaim's "… stopped during the send; outcome unknown". */
export const OLD_DURING_THE_SEND = 'during the send'
/** Every ending or retry that named a send that may have delivered the row. */
export const OLD_MAY_HAVE_DELIVERED = 'may have delivered it'
/**
 * A cancel that left an interrupted send unresolved (kind unresolved) in other words: its lookup
 * could not tell (cancel-wins.ts CANCELLED_UNRESOLVED) or its workers kept stopping
 * (CANCELLED_LOOKUP_STOPPED) ended so, also as the releases since 0189 stored it (kind
 * unresolved), until outcome-unknown.ts made its words "…; outcome unknown".
 */
export const OLD_UNKNOWN_WHETHER_DELIVERED = 'whether it delivered the message is unknown'
/**
 * A failure at a lookup refused (404: the mailbox does not exist), its interrupted send unresolved
 * (kind unresolved; interrupted-send.ts) begins so. A wait at MAIL_FROM's refusal begins so too, a
 * retry, never read as a failure.
 */
export const OLD_LOOKUP_REFUSED = 'the mailbox lookup of an interrupted send was refused: '
/**
 * The retry of an unverified resend answered for sure ends so (resent 'earlier'), also as the
 * releases since 0189 stored it (kind resent), until may-have-delivered.ts made its words one.
 */
export const OLD_EARLIER = ' (an earlier send was interrupted and may have delivered it)'
/** The retry of an unverified resend that may itself have reached the provider ends so ('both'). */
export const OLD_BOTH = ' (that send, or an earlier interrupted one, may have delivered it)'
