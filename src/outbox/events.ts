// Events the engine emits for metrics and tests: one union, consumed by whoever main.ts wires in.

/** Every outcome a settle reports: a closed set, so /metrics can export each before its first. */
export const SETTLE_OUTCOMES = [
  'sent',
  'retry',
  'throttled',
  'failed',
  'expired',
  'cancelled',
  'lease_lost',
] as const

export type SettleOutcome = (typeof SETTLE_OUTCOMES)[number]

export type EngineEvent =
  | { type: 'claimed'; db: string; count: number }
  | {
      type: 'settled'
      db: string
      id: string
      outcome: SettleOutcome
      code?: string
      /** A wait because Graph refused the sender mailbox itself, not a throttle (Settlement's). */
      mailboxRefused?: true
      /** The provider's answer to a wait's request (429, 503…), when it answered: /metrics tells a throttle from an outage by it. */
      httpStatus?: number
      /** Wall time of the send call, when one was made. */
      durationMs?: number
    }
  | { type: 'lease_lost'; db: string; id: string; during: 'heartbeat' | 'settle' | 'start' }
  | { type: 'reclaimed'; db: string; count: number }
  | { type: 'listener'; db: string; state: ListenerState }
  | { type: 'notification'; db: string }
  | { type: 'swept'; db: string; claimed: number }
  | { type: 'loop_error'; db: string; where: string; error: unknown }

export type ListenerState = 'connecting' | 'listening' | 'reconnecting' | 'polling' | 'stopped'

export type EngineEventHandler = (e: EngineEvent) => void
