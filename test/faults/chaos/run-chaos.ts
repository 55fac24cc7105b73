// The chaos itself: turns drawn from the schedule for `chaosMs`, each acting on the run.
import type { ChaosRun } from './chaos-run.ts'
import { enqueueApi, enqueueSql } from './enqueue.ts'
import {
  cutGraph,
  killListeners,
  revokeTokens,
  setLatency,
  stopPostgres,
  terminateBackends,
  throttleMailbox,
} from './faults.ts'
import { stopWorker } from './mailers.ts'
import { cancelRow, probeRowCommand, probeRows, retryCandidates, retryRow } from './row-commands.ts'
import type { ChaosSchedule } from './schedule.ts'
import { type ChaosActions, type ChaosWorld, chaosTurn } from './turn.ts'

export async function runChaos(run: ChaosRun, schedule: ChaosSchedule, chaosMs: number) {
  let apiKeys = 0
  const world: ChaosWorld = {
    pgDown: () => run.pgDown,
    canStop: (slot) => !run.busyWorkers.has(slot) && run.mailers.workers[slot] != null,
    recentIds: () => [...run.record.known].slice(-40),
    retryCandidates: () => retryCandidates(run.db),
    probeRows: () => probeRows(run.db),
  }
  const act: ChaosActions = {
    enqueueSql: (batch) => enqueueSql(run, batch),
    enqueueApi: (row) => enqueueApi(run, row, `chaos-${run.seed}-${apiKeys++}`),
    stopWorker(slot, signal, downMs) {
      run.busyWorkers.add(slot)
      run.record.figures[signal === 'SIGKILL' ? 'kills' : 'terms']++
      run.background.run(() =>
        stopWorker(run.mailers, run.record, slot, signal, downMs, (from, to) =>
          Boolean(run.slowDb?.slowedBetween(slot, from, to)),
        ).finally(() => run.busyWorkers.delete(slot)),
      )
    },
    stopPostgres: (how, outageMs) => stopPostgres(run, how, outageMs),
    async enqueueThenCrash(batch, delayMs, outageMs) {
      await enqueueSql(run, batch)
      stopPostgres(run, 'crash', outageMs, delayMs)
    },
    killListeners: () => killListeners(run),
    terminateBackends: () => terminateBackends(run),
    cutGraph: () => cutGraph(run),
    setLatency: (ms) => setLatency(run, ms),
    revokeTokens: (r) => revokeTokens(run, r),
    cancel: (id) => cancelRow(run, id),
    retry: (id) => retryRow(run, id),
    throttleMailbox: (t) => throttleMailbox(run, t),
    probeRowCommand: (id, how) => probeRowCommand(run, id, how),
    slowDatabase(slot, burst) {
      if (!run.slowDb) return
      run.record.figures.slowBursts++
      run.slowDb.burst(slot, burst, run.background, run.record.note)
    },
  }
  const t0 = performance.now()
  while (performance.now() - t0 < chaosMs) await chaosTurn(schedule, world, act)
}
