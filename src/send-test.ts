// `send-test`: one message through the configured transport, from a mailbox MAIL_FROM_ALLOWED lets rows name, its outcome printed: a first-run check.

import { isSenderAllowed } from './config/allowed-senders.ts'
import { splitNamedAddress } from './config/sender-address.ts'
import type { Config } from './config.ts'
import { EXIT } from './errors.ts'
import type { Logger } from './log.ts'
import { parseDefaultFrom } from './outbox/render.ts'
import type { OutboundMail } from './outbox/sender.ts'
import { emlPath } from './transport/file-sender.ts'
import { createTransport } from './transport-wiring.ts'
import { VERSION } from './version.ts'

const isAddress = (s: string) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s)
const isGuid = (s: string) =>
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)
/** Sends one message through the configured transport and prints the outcome: a first-run check. */
export async function sendTest(
  config: Config,
  args: { to: string; from: string | undefined },
  log: Logger,
): Promise<number> {
  const to = splitNamedAddress(args.to)
  // MAIL_FROM as the engine reads it: `Name <address>` sends from that address, under that name.
  const given = args.from !== undefined ? splitNamedAddress(args.from) : null
  const from =
    given !== null ? given : config.mailFrom !== null ? parseDefaultFrom(config.mailFrom) : null
  // Given (parseArgs refuses a missing --to first), it is named as wrong, never as missing.
  if (!isAddress(to.address)) {
    console.error('send-test --to must be a valid e-mail address (or `Name <address>`)')
    return EXIT.usage
  }
  // Graph takes a mailbox as an address or a user id (a GUID); the file transport needs an address,
  // or it writes a message with no From header and reports it sent.
  const graphUserId = config.transport === 'graph' && given !== null && isGuid(given.address)
  if (given !== null && !isAddress(given.address) && !graphUserId) {
    console.error(
      config.transport === 'graph'
        ? 'send-test --from must be a mailbox: an e-mail address (or `Name <address>`) or a Graph user id (GUID)'
        : 'send-test --from must be a valid e-mail address (or `Name <address>`)',
    )
    return EXIT.usage
  }
  // It sends real mail as the mailbox named: the engine's rule (allowed-senders.ts), not a way
  // around it. The operator's own input is named on the terminal; nothing here reaches the log.
  if (given !== null && !isSenderAllowed(config.allowedSenders, given.address)) {
    console.error(
      `send-test --from ${given.address}: MAIL_FROM_ALLOWED does not list that mailbox (sender_not_allowed), so a row naming it would fail too: name one it lists, or add it to the list`,
    )
    return EXIT.usage
  }
  if (!from) {
    console.error('send-test needs MAIL_FROM or --from ADDRESS')
    return EXIT.usage
  }
  const transport = createTransport(config, log)
  // Its own id: two send-tests in one millisecond (a script's loop) wrote one file transport file.
  const id = `send-test-${Date.now()}-${crypto.randomUUID().slice(0, 8)}`
  const mail: OutboundMail = {
    outboxId: id,
    tenant: 'default',
    attempt: 1,
    correlationId: id,
    from,
    to: [to],
    cc: [],
    bcc: [],
    replyTo: [],
    subject: `outbox-mailer test message (${new Date().toISOString()})`,
    text: `This is a test message from outbox-mailer ${VERSION} (${config.transport} transport).`,
    html: null,
    importance: null,
    headers: {},
    attachments: [],
  }
  const signal = AbortSignal.timeout(60_000)
  // A token request turning slow (3 s) gives a row back for another worker with a token: a
  // command that sends one message has no other, so it waits within the send's deadline (30 s).
  const outcome = await transport.sender.send(mail, signal, undefined, async () => signal)
  const detail = [
    outcome.httpStatus ? `HTTP ${outcome.httpStatus}` : null,
    // Without an answer, the id is the client-request-id the request went with.
    outcome.requestId
      ? `${outcome.httpStatus ? 'request-id' : 'client-request-id'} ${outcome.requestId}`
      : null,
    // Where to open it: the file transport's check ends at the message, as Graph's at the mailbox.
    outcome.kind === 'sent' && config.transport === 'file'
      ? `written to ${emlPath(config.fileDir, id)}`
      : null,
  ].filter(Boolean)
  if (outcome.kind === 'sent') {
    console.log(
      `sent: ${config.transport} accepted the message${detail.length ? ` (${detail.join(', ')})` : ''}`,
    )
    return EXIT.ok
  }
  // A credential Entra refuses for good comes back as a wait (the engine keeps such a row, uncounted,
  // until the credential is fixed): called transient, it read as "try again" when only a fix helps.
  // So is MAIL_FROM when Graph refuses the mailbox itself (the engine holds its rows until it works).
  const refused =
    transport.problem() ?? (transport.senderMailboxRefused?.() ? transport.warning() : null)
  console.error(
    `${outcome.kind === 'retry' && !refused ? 'not sent (transient)' : 'not sent'}: ${outcome.code}: ${outcome.message}${detail.length ? ` (${detail.join(', ')})` : ''}`,
  )
  if (refused) console.error(refused)
  return EXIT.failure
}
