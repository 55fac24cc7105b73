// A Graph fake's request record built by hand, for the unit tests of the chaos soak's checks over the fake's request log.
import type { GraphRequestRecord } from './fake-graph.ts'

/** A sendMail for `outboxId` to `mailbox`, arrived at `at`, answered 202 at `answeredAt` (null: never). */
export const sendRecord = (
  outboxId: string | null,
  at: number,
  answeredAt: number | null,
  mailbox = 'outbox@contoso.example',
) =>
  ({
    kind: 'sendMail',
    mailbox,
    outboxId,
    clientRequestId: null,
    query: {},
    at,
    answeredAt,
    status: answeredAt === null ? null : 202,
    fault: null,
  }) satisfies GraphRequestRecord
