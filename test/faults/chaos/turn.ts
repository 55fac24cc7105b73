// One turn of the chaos: a pause, the schedule's next action, and that action against the world as the turn finds it.
import type {
  ChaosSchedule,
  MailboxThrottle,
  RowSpec,
  SlowDatabase,
  TokenRevocation,
} from './schedule.ts'

/** What a turn reads of the world before it draws what depends on it. */
export interface ChaosWorld {
  pgDown(): boolean
  /** The slot's worker runs and no stop of it is under way. */
  canStop(slot: number): boolean
  /** Recent rows: likely pending or in flight, where a cancel has something to decide. */
  recentIds(): string[]
  /** Rows a retry may take back (failed or cancelled). */
  retryCandidates(): Promise<string[]>
  /** The rows an owed probe waits for: the probe out, else MAIL_FROM's first rows scheduled. */
  probeRows(): Promise<string[]>
}

/** The harness's actions, each given the choices already drawn for it. */
export interface ChaosActions {
  enqueueSql(batch: RowSpec[]): Promise<void>
  enqueueApi(row: RowSpec): Promise<void>
  /** Started in the background: the turn does not wait for the worker to come back. */
  stopWorker(slot: number, signal: 'SIGKILL' | 'SIGTERM', downMs: number): void
  /** Started in the background: Postgres stopped or crashed, down `outageMs`, started again. */
  stopPostgres(how: 'stop' | 'crash', outageMs: number): void
  /** Enqueues `batch`, then crashes Postgres `delayMs` after its commit (down `outageMs`). */
  enqueueThenCrash(batch: RowSpec[], delayMs: number, outageMs: number): Promise<void>
  /** Terminates the LISTEN sessions only (each worker's shared session: claims and sends ride on it). */
  killListeners(): Promise<void>
  terminateBackends(): Promise<void>
  cutGraph(): void
  setLatency(ms: number): void
  revokeTokens(r: TokenRevocation): void
  cancel(id: string): Promise<void>
  retry(id: string): Promise<void>
  throttleMailbox(t: MailboxThrottle): void
  /** Cancels the row through the API, and with `cancelThenRetry` retries it at once. */
  probeRowCommand(id: string, how: 'cancel' | 'cancelThenRetry'): Promise<void>
  /** The slot's database connections (every slot's with `everySlot`) slowed for a while. */
  slowDatabase(slot: number, burst: SlowDatabase): void
}

export async function chaosTurn(
  s: ChaosSchedule,
  world: ChaosWorld,
  act: ChaosActions,
  pause: (ms: number) => Promise<unknown> = Bun.sleep,
): Promise<void> {
  await pause(s.pauseMs())
  const { action, slot, downMs } = s.step()
  try {
    switch (action) {
      case 'enqueueSql':
        if (!world.pgDown()) await act.enqueueSql(s.batch())
        break
      case 'enqueueApi':
        if (!world.pgDown()) await act.enqueueApi(s.row())
        break
      case 'kill':
      case 'term':
        if (world.canStop(slot))
          act.stopWorker(slot, action === 'kill' ? 'SIGKILL' : 'SIGTERM', downMs)
        break
      case 'restartPostgres':
      case 'crashPostgres':
        if (!world.pgDown())
          act.stopPostgres(action === 'crashPostgres' ? 'crash' : 'stop', s.outageMs(downMs))
        break
      case 'crashAfterEnqueue':
        if (!world.pgDown())
          await act.enqueueThenCrash(s.batch(), s.crashDelayMs(), s.outageMs(downMs))
        break
      case 'killListener':
        if (!world.pgDown()) await act.killListeners()
        break
      case 'terminateBackends':
        if (!world.pgDown()) await act.terminateBackends()
        break
      case 'latency':
        act.setLatency(s.latencyMs())
        break
      case 'revokeToken':
        act.revokeTokens(s.tokenRevocation())
        break
      case 'cutGraph':
        act.cutGraph()
        break
      case 'cancel': {
        const ids = world.recentIds()
        if (ids.length > 0) await act.cancel(s.oneOf(ids))
        break
      }
      case 'retry': {
        if (world.pgDown()) break
        const candidates = await world.retryCandidates()
        if (candidates.length > 0) await act.retry(s.oneOf(candidates))
        break
      }
      case 'throttleMailbox':
        act.throttleMailbox(s.mailboxThrottle())
        break
      case 'probeRowCommand': {
        if (world.pgDown()) break
        const ids = await world.probeRows()
        if (ids.length > 0) await act.probeRowCommand(s.oneOf(ids), s.probeCommand())
        break
      }
      case 'slowDatabase':
        act.slowDatabase(slot, s.slowDatabase())
        break
    }
  } catch {
    // A fault of the harness's own making (the database down or restarting): the next one.
  }
}
