// MAIL_FROM's mailbox: asked of Graph as a mailbox lookup asks it, never by sending, so a mailbox Graph does not have is named before the first send.
import type { Config } from '../config.ts'
import { parseDefaultFrom } from '../outbox/render.ts'
import { parseGraphError } from '../transport/graph-error-text.ts'
import { lookupQuery, ROW_MAIL_SELECT } from '../transport/lookup-query.ts'
import { describe, type Findings } from './findings.ts'

/**
 * Graph has no read-only way to ask whether an app may send from a mailbox: Mail.Send permits
 * sendMail and nothing else, and ErrorSendAsDenied or an access policy's 403 come only from a send.
 * What can be asked without one is the lookup's own request (a message tagged with an id no row
 * has): a 404 (ErrorInvalidUser, MailboxNotEnabledForRESTAPI) is the mailbox missing, unlicensed
 * or on-premises, which every send from it would meet too; a 403 is an app that may not read it,
 * which says nothing of sending. Graph's message is not echoed: it names the address.
 */
export async function checkMailFrom(
  config: Config,
  token: string,
  fetchFn: typeof fetch,
  timeoutMs: number,
): Promise<Findings> {
  const out: Findings = { problems: [], checks: [] }
  const graph = config.graph!
  const from = parseDefaultFrom(config.mailFrom!).address
  const url = `${graph.apiUrl.replace(/\/+$/, '')}/users/${encodeURIComponent(from)}/mailFolders/sentitems/messages${lookupQuery('check-config', ROW_MAIL_SELECT, 1)}`
  let res: Response
  let text: string
  try {
    res = await fetchFn(url, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeoutMs),
    })
    text = await res.text()
  } catch (e) {
    out.checks.push(`warning: MAIL_FROM: not checked: Graph did not answer (${describe(e)})`)
    return out
  }
  const code = parseGraphError(text).code ?? `http_${res.status}`
  if (res.ok) {
    out.checks.push('MAIL_FROM: Graph has its mailbox, and this app may read it')
  } else if (res.status === 404) {
    out.problems.push(
      `MAIL_FROM: Graph answers 404 ${code} for its mailbox: it does not exist, has no Exchange Online licence, or is on-premises, and every send from it would be refused`,
    )
  } else if (res.status === 403 && graph.mailboxLookup) {
    out.checks.push(
      `warning: GRAPH_MAILBOX_LOOKUP=true but Graph answers 403 ${code} to a lookup in MAIL_FROM's mailbox: grant Mail.Read for it (or its RBAC scope), or an interrupted send follows AMBIGUOUS_SEND_POLICY`,
    )
  } else if (res.status === 403) {
    out.checks.push(
      'MAIL_FROM: not checked: Graph lets this app send only (no Mail.Read for the mailbox), and asking whether it may send from it takes a send; a refused mailbox shows at the first one',
    )
  } else {
    out.checks.push(`warning: MAIL_FROM: not checked: Graph answered HTTP ${res.status} ${code}`)
  }
  return out
}
