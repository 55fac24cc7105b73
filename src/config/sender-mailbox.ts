// Which MAIL_FROM a transport can send as: an address the database would accept, or a Graph user id.
import { isEmailAddress } from './email-address.ts'
import type { EnvValues } from './env-schema.ts'
import { isGraphUserId, splitNamedAddress } from './sender-address.ts'

function isSenderMailbox(value: string, byId: boolean): boolean {
  // Graph also names a mailbox by its user id; a file needs an address for its From header.
  if (byId && isGraphUserId(value)) return true
  // Read as the renderer reads it, held to mailer.is_email_address (its length too): a MAIL_FROM
  // it refuses would pass the start and then fail, for good, every row.
  return isEmailAddress(splitNamedAddress(value).address)
}

/**
 * What serve logs at its start and check-config prints when file or discard runs without MAIL_FROM:
 * valid, but every row that names no sender of its own then fails, for good (the renderer has none).
 */
export const MAIL_FROM_UNSET_WARNING =
  'MAIL_FROM is not set: a row that names no "from" fails with code no_sender'

/** What is wrong with MAIL_FROM as the sender of `transport`, or null. */
export function mailFromProblem(
  mailFrom: string,
  transport: EnvValues['MAIL_TRANSPORT'],
): string | null {
  // Only the file transport writes a From header; discard (a staging copy of a Graph deployment's
  // settings) takes what Graph takes.
  const byId = transport !== 'file'
  if (isSenderMailbox(mailFrom, byId)) return null
  return `MAIL_FROM: must be an e-mail address ("Name <address>" is fine)${byId ? ' or a Graph user id (a GUID)' : ''}`
}

/**
 * What serve --role api logs at its start and check-config --role api prints when its MAIL_FROM is
 * set and no address a worker could send from: valid for a process that sends nothing, but it
 * cannot stand for the workers' MAIL_FROM (GET /v1/outbox/{id}: row-rendering.ts
 * mailFromUnknownHere), and a worker given the same refuses to start. Null otherwise: none set is
 * the deploy guide's api/worker split, and a usable one is taken for the workers'. Never the value.
 */
export function apiMailFromWarning(
  mailFrom: string | null,
  transport: EnvValues['MAIL_TRANSPORT'],
): string | null {
  const problem = mailFrom === null ? null : mailFromProblem(mailFrom, transport)
  if (problem === null) return null
  return `MAIL_FROM is no address a worker could send from (${problem}): serve --role api sends nothing and starts, but GET /v1/outbox/{id} cannot tell from it the sender of a row naming none (rendered.from null, fromNote says why), and a worker refuses to start with it: set it to the workers' MAIL_FROM, or unset it`
}
