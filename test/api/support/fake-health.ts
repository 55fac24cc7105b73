// A HealthSource whose answers the test sets directly.
import type { DatabaseHealth, HealthSource } from '../../../src/outbox/health.ts'

export interface FakeHealth extends HealthSource {
  states: DatabaseHealth[]
  live: { ok: boolean; problems: string[] }
}

export const healthyDatabase = (name: string): DatabaseHealth => ({
  name,
  reachable: true,
  migrated: true,
  worker: 'running',
  listener: 'listening',
  lastLoopAt: Date.now(),
  problem: null,
  warning: null,
})

export function fakeHealth(names: string[] = ['default']): FakeHealth {
  const h: FakeHealth = {
    states: names.map(healthyDatabase),
    live: { ok: true, problems: [] },
    readiness: async () => h.states.map((s) => ({ ...s })),
    listenerStates: () => h.states.map((s) => ({ name: s.name, listener: s.listener })),
    liveness: () => h.live,
  }
  return h
}
