// What `serve` is given (its role, log, hooks) and the handle it returns to stop what it started.
import type { ServeRole } from './config.ts'
import type { Logger } from './log.ts'
import type { Drainer } from './outbox/drainer.ts'
import type { EngineEventHandler } from './outbox/events.ts'
import type { Listener } from './outbox/listener.ts'
import type { Sender } from './outbox/sender.ts'

/** `serve --role`: config decides by it which settings are needed, serve what it starts. */
export type Role = ServeRole

/** Per database with any: the first UNRECORDED_NAMED named (outbox/unrecorded-ids.ts), `more` counting the rest. */
export type UnrecordedSends = { db: string; ids: string[]; more?: number }[]

export interface Running {
  stop(reason: string): Promise<void>
  /** Per database, the sends the provider accepted whose outcome is not recorded (none: omitted). */
  unrecordedSends(): UnrecordedSends
  port: number | null
  drainers: Map<string, Drainer>
  listeners: Map<string, Listener>
}

export interface ServeOptions {
  role: Role
  log: Logger
  dev?: boolean
  onEvent?: EngineEventHandler
  /** Overrides the transport (tests, dev). */
  sender?: Sender
  /**
   * Called once the HTTP server listens, with the ports bound (PORT=0 is the system's choice): dev's
   * banner says the product is running, and where.
   */
  onListening?: (bound: { port: number; metricsPort: number | null }) => void
}
