// Discard transport: accepts every message and sends nothing (staging, benchmarks).
import type { Sender } from '../outbox/sender.ts'

export function createDiscardSender(): Sender {
  return { name: 'discard', send: async () => ({ kind: 'sent' }) }
}
