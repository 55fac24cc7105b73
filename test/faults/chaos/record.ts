// The harness's own record of a chaos run: what it did and when, what the mailers answered it, and what went wrong.
import type { TokenRevocation } from './schedule.ts'

/** What the harness did and when (Date.now(), as the fake's times; the logs are ISO UTC). */
export interface TimelineEntry {
  at: number
  what: string
  ids?: string[]
}

export interface ChaosRecord {
  problems: string[]
  /** Rows a check found wrong: each is explained in full when the run fails. */
  offending: Set<string>
  timeline: TimelineEntry[]
  note(what: string, ids?: string[]): void
  /** Every row id an enqueue answered. */
  known: Set<string>
  /** Rows whose cancel answered 200/202, and when. */
  cancelledAt: Map<string, number>
  /** Rows a cancel was asked for, whatever the answer. */
  cancelAsked: Set<string>
  /** Rows a retry answered 200 for, and when (each time). */
  retriedAt: Map<string, number[]>
  expiresAtOf: Map<string, number>
  figures: {
    enqueued: number
    kills: number
    terms: number
    pgRestarts: number
    pgCrashes: number
    terminated: number
    listenerKills: number
    cuts: number
    cancels: number
    retries: number
    revokes: number
    /** The pause mix's mailbox throttles, and its cancels and retries of the rows a probe waits for. */
    mailboxThrottles: number
    probeCommands: number
    /** Cancels and retries through the API that got no answer (timed out) or a 5xx. */
    unanswered: number
    /** The slow-database shape's bursts (CHAOS_SLOW_DB). */
    slowBursts: number
    /** SIGTERMs whose stop a slow database held past its bound: `stop cut short` (exit 0) or `stop unfinished` (exit 1). */
    stopsUnfinished: number
  }
  /** The token revocations by what Entra was set to answer the refresh (figures.revokes in all). */
  revokedWith: Record<TokenRevocation['entra'], number>
  /** Processes that exited 0 after SIGTERM, with when their stop began and ended. */
  gracefulPids: Map<number, { from: number; to: number }>
  /** When Postgres was down (to: Infinity while it still is). */
  pgDownSpans: { from: number; to: number }[]
}

export function newChaosRecord(): ChaosRecord {
  const timeline: TimelineEntry[] = []
  return {
    problems: [],
    offending: new Set(),
    timeline,
    note: (what, ids) => timeline.push({ at: Date.now(), what, ...(ids ? { ids } : {}) }),
    known: new Set(),
    cancelledAt: new Map(),
    cancelAsked: new Set(),
    retriedAt: new Map(),
    expiresAtOf: new Map(),
    figures: {
      enqueued: 0,
      kills: 0,
      terms: 0,
      pgRestarts: 0,
      pgCrashes: 0,
      terminated: 0,
      listenerKills: 0,
      cuts: 0,
      cancels: 0,
      retries: 0,
      revokes: 0,
      mailboxThrottles: 0,
      probeCommands: 0,
      unanswered: 0,
      slowBursts: 0,
      stopsUnfinished: 0,
    },
    revokedWith: { hangs: 0, '503': 0, fine: 0 },
    gracefulPids: new Map(),
    pgDownSpans: [],
  }
}
