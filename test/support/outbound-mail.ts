// A plain mail as the engine hands it to a sender (one recipient, text only), for the transport's tests.
import type { OutboundMail } from '../../src/outbox/sender.ts'

/** The mail from `from` to ann@contoso.com, "Your order" / "Shipped.", with `over` laid on top. */
export function outboundMail(from: string, over: Partial<OutboundMail> = {}): OutboundMail {
  return {
    outboxId: '1',
    tenant: 'default',
    attempt: 1,
    correlationId: null,
    from: { address: from },
    to: [{ address: 'ann@contoso.com' }],
    cc: [],
    bcc: [],
    replyTo: [],
    subject: 'Your order',
    text: 'Shipped.',
    html: null,
    importance: null,
    headers: {},
    attachments: [],
    ...over,
  }
}
