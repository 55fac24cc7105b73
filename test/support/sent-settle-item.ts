// A settle queue's item for a send that succeeded, under a lease token of its own: the unit tests' outcome to record.
import type { SettleItem } from '../../src/outbox/settle-item.ts'

export const sentItem = (id: string): SettleItem => ({
  id,
  token: crypto.randomUUID(),
  settlement: { kind: 'sent' },
  startedAt: null,
})
