// A strict fake of Microsoft Graph sendMail + mailbox lookup (and, via fake-entra, the token endpoint) on loopback.
import { randomUUID } from 'node:crypto'
import type { GraphConfig } from '../../src/config/graph-settings.ts'
import { createFakeEntra, type TokenFault, type TokenRequestRecord } from './fake-entra.ts'
import { sendMailBodyError } from './fake-graph-body.ts'

export type { TokenFault, TokenRequestRecord } from './fake-entra.ts'
export { sendMailBodyProblems } from './fake-graph-body.ts'
export { generateTestCertificate, type TestCertificate } from './test-certificate.ts'

export interface FakeGraphOptions {
  tenantId?: string
  clientId?: string
  /** PEM certificates registered on the app registration. */
  certificates?: string[]
  clientSecret?: string
  tokenLifetimeSeconds?: number
  refreshInSeconds?: number
  expiresInAsString?: boolean
  /** The fake's notion of time (token expiry, assertion windows); share the test's clock. */
  now?: () => number
  /** When set, any other mailbox answers 404 ErrorInvalidUser. */
  mailboxes?: string[]
  disabledMailboxes?: string[]
  /**
   * Mailboxes whose store is full: sendMail (which saves the message in the sender's mailbox) and
   * a lookup answer 403 ErrorQuotaExceeded "Mailbox has exceeded maximum mailbox size." (reported
   * for sendMail: microsoft-graph-docs-contrib#7483; 403 with that code on Outlook REST reads:
   * OfficeDocs-O365ServiceDescriptions#69, microsoft-graph-docs-contrib#7751).
   */
  fullMailboxes?: string[]
  /** Mail.Read/Mail.ReadBasic granted (lookup works); otherwise lookups answer 403. */
  mailRead?: boolean
  /** Outlook's limit of concurrent requests per app; above it Graph answers 429 MailboxConcurrency. */
  concurrencyLimit?: number
  seed?: number
  /** Recipients Graph cannot resolve: a message to any of them answers 400 ErrorInvalidRecipients. */
  rejectRecipients?: string[]
  /**
   * The most messages a list page holds whatever $top asks: Graph pages server-side too, and a
   * client follows @odata.nextLink until it is absent (graph.md §6, concepts/paging.md).
   */
  maxPageSize?: number
  /**
   * The origin clients reach the fake at, when not its own (a proxy in front of it): the token
   * endpoint and the resource Entra checks are named by it.
   */
  publicOrigin?: string
}

export type GraphFault =
  | { status: number; code: string; message?: string; retryAfter?: string }
  | 'hang'
  | 'invalid_recipients'
  /** 202 with a Retry-After header: accepted, and must not be repeated (msgraph-sdk-java#1487). */
  | 'accept_with_retry_after'
  /** Accepted, then no answer until the client gives up: an ambiguous send. */
  | 'accept_then_hang'
  /** Accepted, then a gateway's 504 (Retry-After 1): an ambiguous send. */
  | 'accept_then_504'
  /**
   * Accepted, then a gateway's 502 (it got an invalid answer from the backend that took the
   * message): one of the statuses Graph uses (Microsoft's Dev Proxy, GraphRandomErrorPlugin).
   */
  | 'accept_then_502'

export interface FakeGraphFaults {
  /** Consumed one per sendMail request, before anything else happens to it. */
  sendMail?: GraphFault[]
  /** Consumed one per mailbox lookup (GET …/messages), before anything else happens to it. */
  lookup?: Extract<GraphFault, { status: number }>[]
  /**
   * Asked per sendMail request once `sendMail` is empty, with the mailbox it sends from (lower
   * case): a fault, or undefined to answer normally (one mailbox throttled while others send).
   */
  pickSendMail?: (mailbox: string) => GraphFault | undefined
  /** Asked per mailbox lookup once `lookup` is empty: a fault, or undefined to answer normally. */
  pickLookup?: () => Extract<GraphFault, { status: number }> | undefined
  /** Fraction of sendMail requests answered 429 ApplicationThrottled (seeded, deterministic). */
  throttleFraction?: number
  retryAfter?: string
  latencyMs?: number
  /**
   * Each sendMail waits for this to settle (after `latencyMs`) before it is answered as it would be:
   * the request in flight for as long as a test needs to change its row meanwhile.
   */
  answerAfter?: Promise<unknown>
  /**
   * Each mailbox lookup waits for this to settle before it is answered as it would be (its fault
   * taken then): the lookup in flight for as long as a test needs, a stop to begin, say.
   */
  lookupAnswerAfter?: Promise<unknown>
  token?: TokenFault[]
  /** Where accepted messages land: Sent Items, or still in Drafts (in transit). */
  landIn?: 'sentitems' | 'drafts'
  /**
   * Accepted messages are filed late: found by no lookup (neither Sent Items nor the rest of the
   * mailbox) until fileLateMessages() files them where `landIn` says. sendMail answers 202 before
   * the store has filed the message (graph.md §4: absence is not proof of non-delivery).
   */
  fileLate?: boolean
}

export interface AcceptedMessage {
  mailbox: string
  outboxId: string | null
  propertyValue: string | null
  folder: 'sentitems' | 'drafts' | null
  /** Accepted but not filed yet (FakeGraphFaults.fileLate): no lookup finds it. */
  unfiled: boolean
  saveToSentItems: boolean
  body: Record<string, unknown>
  requestId: string
  /** Date.now() when the message was accepted (rate checks). */
  acceptedAt: number
}

/**
 * Every sendMail and mailbox lookup the fake received, in arrival order, for a failing test to
 * explain itself: when it came, which outbox id it carried, what the fake answered and when.
 */
export interface GraphRequestRecord {
  kind: 'sendMail' | 'lookup'
  mailbox: string
  /** The X-Outbox-Id of a sendMail body, or the OutboxId a lookup asked for; null when unreadable. */
  outboxId: string | null
  /** The client-request-id header the request came with (Graph echoes it and logs it), or null. */
  clientRequestId: string | null
  /** The request's query options ($filter, $select, $expand, $top), as Graph reads them. */
  query: Readonly<Record<string, string>>
  /** Date.now() when the request arrived, and when it was answered (null: never, or not yet). */
  at: number
  answeredAt: number | null
  /** Date.now() when the client closed the request before its answer (its abort, a cut connection). */
  closedAt?: number
  /** The answer's status (499: a hung request released by the client's abort or the stop). */
  status: number | null
  /** The fault applied, or null; for a lookup, how many messages it found. */
  fault: string | null
  found?: number
  /** The request id of the accepted message, when the fake accepted it. */
  acceptedRequestId?: string
}

const MAX_REQUEST_BYTES = 4 * 1024 * 1024
/** The list-messages page size without $top (list-messages doc: 10; $top takes 1-1000). */
const DEFAULT_PAGE_SIZE = 10
/** The query options a lookup may send (anything else is refused, as Graph refuses an unknown one). */
const LIST_OPTIONS = new Set(['$filter', '$select', '$top', '$skip', '$expand'])

export async function startFakeGraph(opts: FakeGraphOptions = {}) {
  const tenantId = opts.tenantId ?? randomUUID()
  const clientId = opts.clientId ?? randomUUID()
  const now = opts.now ?? Date.now
  const accepted: AcceptedMessage[] = []
  const requests: GraphRequestRecord[] = []
  const hung = new Set<() => void>()
  let faults: FakeGraphFaults = {}
  let inFlight = 0
  let sendMailRequests = 0
  let unauthorizedRequests = 0
  let maxConcurrent = 0
  let rng = opts.seed ?? 42
  const random = () => {
    rng = (rng * 1103515245 + 12345) % 2 ** 31
    return rng / 2 ** 31
  }

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    fetch: (req) => route(req),
  })
  const origin = opts.publicOrigin ?? `http://127.0.0.1:${server.port}`
  const entra = createFakeEntra({
    tenantId,
    clientId,
    certificates: opts.certificates ?? [],
    ...(opts.clientSecret !== undefined ? { clientSecret: opts.clientSecret } : {}),
    resource: origin,
    tokenLifetimeSeconds: opts.tokenLifetimeSeconds ?? 3599,
    ...(opts.refreshInSeconds !== undefined ? { refreshInSeconds: opts.refreshInSeconds } : {}),
    ...(opts.expiresInAsString ? { expiresInAsString: true } : {}),
    now,
  })

  function hang(req: Request): Promise<Response> {
    return new Promise<Response>((resolve) => {
      const done = () => {
        hung.delete(done)
        resolve(new Response(null, { status: 499 }))
      }
      hung.add(done)
      req.signal.addEventListener('abort', done, { once: true })
    })
  }

  async function route(req: Request): Promise<Response> {
    const url = new URL(req.url)
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname)
    if (token) {
      if (req.method !== 'POST') return graphError(405, 'Request_BadRequest', 'POST only')
      return entra.handle(req, `${origin}${url.pathname}`, decodeURIComponent(token[1]!))
    }
    inFlight++
    maxConcurrent = Math.max(maxConcurrent, inFlight)
    try {
      if (inFlight > (opts.concurrencyLimit ?? 4)) {
        return graphError(
          429,
          'ApplicationThrottled',
          'Application is over its MailboxConcurrency limit.',
          { 'retry-after': '1' },
        )
      }
      return await graphRoute(req, url)
    } finally {
      inFlight--
    }
  }

  async function graphRoute(req: Request, url: URL): Promise<Response> {
    const m =
      /^\/v1\.0\/users\/([^/]+)(\/sendMail|\/messages|\/mailFolders\/sentitems\/messages)$/i.exec(
        url.pathname,
      )
    if (!m)
      return graphError(400, 'BadRequest', `Resource not found for the segment '${url.pathname}'.`)
    const bearer = /^Bearer (.+)$/.exec(req.headers.get('authorization') ?? '')?.[1]
    const state = bearer ? entra.checkBearer(bearer) : 'invalid'
    if (state !== 'ok') {
      unauthorizedRequests++
      return graphError(
        401,
        'InvalidAuthenticationToken',
        state === 'expired'
          ? 'Access token has expired or is not yet valid.'
          : 'Access token validation failure.',
        {
          'www-authenticate':
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
        },
      )
    }
    const mailbox = decodeURIComponent(m[1]!).toLowerCase()
    const kind = m[2] === '/sendMail' ? 'sendMail' : 'lookup'
    if (kind === 'sendMail' && req.method !== 'POST')
      return graphError(405, 'Request_BadRequest', 'sendMail takes POST')
    if (kind === 'lookup' && req.method !== 'GET')
      return graphError(405, 'Request_BadRequest', 'messages takes GET here')
    const record: GraphRequestRecord = {
      kind,
      mailbox,
      outboxId: null,
      clientRequestId: req.headers.get('client-request-id'),
      query: Object.fromEntries(url.searchParams),
      at: Date.now(),
      answeredAt: null,
      status: null,
      fault: null,
    }
    // Recorded whatever the answer, a refused mailbox's too: a test asserts on what was asked.
    requests.push(record)
    req.signal.addEventListener(
      'abort',
      () => {
        if (record.answeredAt === null) record.closedAt = Date.now()
      },
      { once: true },
    )
    if (kind === 'sendMail') {
      sendMailRequests++
      // Read for the record only (a clone): the answer below does not wait for it.
      req
        .clone()
        .text()
        .then((raw) => {
          record.outboxId = outboxIdOf(raw)
        })
        .catch(() => {})
    }
    const res = mailboxRefusal(mailbox, record) ?? (await answer(req, url, m[2]!, record))
    record.answeredAt = Date.now()
    record.status = res.status
    return res
  }

  /** Graph's refusal of the mailbox itself: 404 unknown (`mailboxes`) or not enabled, 403 full; null: none. */
  function mailboxRefusal(mailbox: string, record: GraphRequestRecord): Response | null {
    let refusal: [code: string, message: string] | null = null
    if (opts.mailboxes && !opts.mailboxes.some((b) => b.toLowerCase() === mailbox)) {
      refusal = ['ErrorInvalidUser', `The requested user '${mailbox}' is invalid.`]
    } else if (opts.disabledMailboxes?.some((b) => b.toLowerCase() === mailbox)) {
      refusal = [
        'MailboxNotEnabledForRESTAPI',
        'The mailbox is either inactive, soft-deleted, or is hosted on-premise.',
      ]
    } else if (opts.fullMailboxes?.some((b) => b.toLowerCase() === mailbox)) {
      record.fault = 'ErrorQuotaExceeded'
      return graphError(403, 'ErrorQuotaExceeded', 'Mailbox has exceeded maximum mailbox size.')
    }
    if (!refusal) return null
    record.fault = refusal[0]
    return graphError(404, ...refusal)
  }

  async function answer(
    req: Request,
    url: URL,
    path: string,
    record: GraphRequestRecord,
  ): Promise<Response> {
    if (record.kind === 'sendMail') return sendMail(req, record.mailbox, record)
    if (faults.lookupAnswerAfter) await faults.lookupAnswerAfter
    return listMessages(
      url,
      record.mailbox,
      path.toLowerCase() === '/messages' ? null : 'sentitems',
      record,
    )
  }

  async function sendMail(
    req: Request,
    mailbox: string,
    record: GraphRequestRecord,
  ): Promise<Response> {
    if (faults.latencyMs) await Bun.sleep(faults.latencyMs)
    if (faults.answerAfter) await faults.answerAfter
    const fault = faults.sendMail?.shift() ?? faults.pickSendMail?.(mailbox)
    record.fault = fault === undefined ? null : typeof fault === 'string' ? fault : fault.code
    if (fault === 'hang') return hang(req)
    if (typeof fault === 'object') {
      return graphError(
        fault.status,
        fault.code,
        fault.message ?? fault.code,
        fault.retryAfter ? { 'retry-after': fault.retryAfter } : {},
      )
    }
    if (faults.throttleFraction && random() < faults.throttleFraction) {
      return graphError(
        429,
        'ApplicationThrottled',
        'Application is over its MailboxConcurrency limit.',
        { 'retry-after': faults.retryAfter ?? '1' },
      )
    }
    if (!(req.headers.get('content-type') ?? '').startsWith('application/json')) {
      return graphError(415, 'UnsupportedMediaType', 'Content-Type must be application/json.')
    }
    const raw = await req.text()
    if (Buffer.byteLength(raw) > MAX_REQUEST_BYTES)
      return graphError(
        413,
        'RequestEntityTooLarge',
        'The maximum request length supported is 4MB.',
      )
    let body: Record<string, unknown>
    try {
      body = JSON.parse(raw) as Record<string, unknown>
    } catch {
      return graphError(400, 'BadRequest', 'Unable to read JSON request payload.')
    }
    const problem = sendMailBodyError(body)
    if (problem) return graphError(400, problem.code, problem.message)
    const rejected = rejectedRecipient(body)
    if (fault === 'invalid_recipients' || rejected !== null) {
      // Graph quotes the recipient it could not resolve, as the request spelt it.
      return graphError(
        400,
        'ErrorInvalidRecipients',
        `At least one recipient isn't valid., Recipient '${rejected ?? 'nobody@example.invalid'}' isn't resolved. All recipients must be resolved before a message can be submitted.`,
      )
    }
    const message = (body.message ?? body.Message) as Record<string, unknown>
    const save =
      String(body.saveToSentItems ?? body.SaveToSentItems ?? 'true').toLowerCase() !== 'false'
    const headers = (message.internetMessageHeaders ?? []) as { name: string; value: string }[]
    const props = (message.singleValueExtendedProperties ?? []) as { id: string; value: string }[]
    const requestId = randomUUID()
    accepted.push({
      mailbox,
      outboxId: headers.find((h) => h.name.toLowerCase() === 'x-outbox-id')?.value ?? null,
      propertyValue: props.find((p) => / Name OutboxId$/.test(p.id))?.value ?? null,
      folder: save ? (faults.landIn ?? 'sentitems') : null,
      unfiled: faults.fileLate === true,
      saveToSentItems: save,
      body,
      requestId,
      acceptedAt: Date.now(),
    })
    record.acceptedRequestId = requestId
    if (fault === 'accept_then_hang') return hang(req)
    if (fault === 'accept_then_504') {
      return graphError(504, 'GatewayTimeout', 'Gateway Timeout', { 'retry-after': '1' })
    }
    if (fault === 'accept_then_502') return graphError(502, 'BadGateway', 'Bad Gateway')
    const extra: Record<string, string> =
      fault === 'accept_with_retry_after' ? { 'retry-after': '10' } : {}
    return new Response(null, {
      status: 202,
      headers: { 'request-id': requestId, 'client-request-id': requestId, ...extra },
    })
  }

  /** The first recipient of the request Graph cannot resolve (`rejectRecipients`), as sent; null: none. */
  function rejectedRecipient(body: Record<string, unknown>): string | null {
    if (!opts.rejectRecipients?.length) return null
    const message = (body.message ?? body.Message) as Record<string, unknown>
    const rejected = new Set(opts.rejectRecipients.map((r) => r.toLowerCase()))
    for (const k of ['toRecipients', 'ccRecipients', 'bccRecipients']) {
      for (const r of (message[k] ?? []) as { emailAddress?: { address?: string } }[]) {
        const address = String(r.emailAddress?.address ?? '')
        if (rejected.has(address.toLowerCase())) return address
      }
    }
    return null
  }

  function listMessages(
    url: URL,
    mailbox: string,
    folder: 'sentitems' | null,
    record: GraphRequestRecord,
  ): Response {
    const asked = /ep\/value eq '((?:[^']|'')*)'\)$/.exec(url.searchParams.get('$filter') ?? '')
    record.outboxId = asked ? asked[1]!.replaceAll("''", "'") : null
    const fault = faults.lookup?.shift() ?? faults.pickLookup?.()
    if (fault) {
      record.fault = fault.code
      return graphError(
        fault.status,
        fault.code,
        fault.message ?? fault.code,
        fault.retryAfter ? { 'retry-after': fault.retryAfter } : {},
      )
    }
    if (opts.mailRead === false)
      return graphError(
        403,
        'ErrorAccessDenied',
        'Access is denied. Check credentials and try again.',
      )
    const filter = url.searchParams.get('$filter') ?? ''
    const f =
      /^singleValueExtendedProperties\/Any\((\w+): \1\/id eq '((?:[^']|'')*)' and \1\/value eq '((?:[^']|'')*)'\)$/i.exec(
        filter,
      )
    if (!f) return graphError(400, 'BadRequest', 'Invalid filter clause')
    const unknown = [...url.searchParams.keys()].find((k) => !LIST_OPTIONS.has(k))
    if (unknown) return graphError(400, 'BadRequest', `Query option '${unknown}' is not allowed.`)
    const topAsked = Number(url.searchParams.get('$top') ?? String(DEFAULT_PAGE_SIZE))
    if (!Number.isInteger(topAsked) || topAsked < 1 || topAsked > 1000)
      return graphError(400, 'BadRequest', 'Invalid $top')
    const top = Math.min(topAsked, opts.maxPageSize ?? topAsked)
    const skip = Number(url.searchParams.get('$skip') ?? '0')
    if (!Number.isInteger(skip) || skip < 0) return graphError(400, 'BadRequest', 'Invalid $skip')
    // `$expand=singleValueExtendedProperties($filter=id eq '…' [or id eq '…'])`: the one way to
    // read an extended property back (singlevaluelegacyextendedproperty-get); any other expansion
    // is not the fake's.
    const expandParam = url.searchParams.get('$expand')
    const expand =
      expandParam === null
        ? null
        : /^singleValueExtendedProperties\(\$filter=(id eq '(?:[^']|'')*'(?: or id eq '(?:[^']|'')*')*)\)$/i.exec(
            expandParam,
          )
    if (expand === null && expandParam !== null)
      return graphError(400, 'BadRequest', `Invalid $expand: ${expandParam}`)
    const expandIds = expand
      ? [...expand[1]!.matchAll(/id eq '((?:[^']|'')*)'/gi)].map((e) => e[1]!.replaceAll("''", "'"))
      : []
    const selected = (url.searchParams.get('$select') ?? 'id').split(',').filter((k) => k !== 'id')
    const SELECTABLE = ['subject', 'toRecipients']
    const unselectable = selected.find((k) => !SELECTABLE.includes(k))
    if (unselectable !== undefined)
      return graphError(400, 'BadRequest', `Could not find a property named '${unselectable}'.`)
    const id = f[2]!.replaceAll("''", "'")
    const value = f[3]!.replaceAll("''", "'").toLowerCase()
    const propsOf = (a: AcceptedMessage) =>
      (
        (a.body.message ?? a.body.Message) as {
          singleValueExtendedProperties?: { id: string; value: string }[]
        }
      ).singleValueExtendedProperties ?? []
    const found = accepted.filter((a) => {
      if (a.mailbox !== mailbox || a.folder === null || a.unfiled) return false
      if (folder && a.folder !== folder) return false
      // The name part of a property id is case-sensitive, the value is not (graph.md §4).
      return propsOf(a).some((p) => p.id === id && p.value.toLowerCase() === value)
    })
    record.found = found.length
    const page = found.slice(skip, skip + top).map((a) => {
      const expanded = propsOf(a).filter((p) => expandIds.includes(p.id))
      // A message without the expanded property has no singleValueExtendedProperties at all.
      const message = (a.body.message ?? a.body.Message) as Record<string, unknown>
      // $select's message properties, as Graph answers them (the fake stores the request's).
      const picked = Object.fromEntries(
        selected.filter((k) => k in message).map((k) => [k, message[k]]),
      )
      return {
        id: a.requestId,
        ...picked,
        ...(expanded.length > 0 ? { singleValueExtendedProperties: expanded } : {}),
      }
    })
    // More than a page: the rest behind an absolute @odata.nextLink that names the fake itself
    // (graph.md §6), the same query with $skip; the client follows it whole, never builds it.
    let nextLink: string | undefined
    if (skip + top < found.length) {
      const next = new URL(`${origin}${url.pathname}`)
      for (const [k, v] of url.searchParams) if (k !== '$skip') next.searchParams.append(k, v)
      next.searchParams.set('$skip', String(skip + top))
      nextLink = next.toString()
    }
    return Response.json(
      {
        '@odata.context': `${origin}/v1.0/$metadata#users('${mailbox}')/messages(id)`,
        value: page,
        ...(nextLink ? { '@odata.nextLink': nextLink } : {}),
      },
      { headers: { 'request-id': randomUUID() } },
    )
  }

  return {
    authorityUrl: origin,
    apiUrl: `${origin}/v1.0`,
    /** The fake's own port (a proxy's target when `publicOrigin` is set). */
    port: server.port,
    tenantId,
    clientId,
    accepted,
    /** Every sendMail and lookup received (see GraphRequestRecord). */
    requests: requests as readonly GraphRequestRecord[],
    tokenRequests: entra.requests as readonly TokenRequestRecord[],
    get maxConcurrent() {
      return maxConcurrent
    },
    inFlight: () => inFlight,
    /** sendMail requests received, whatever their answer. */
    sendMailRequests: () => sendMailRequests,
    /** sendMail and lookup requests answered 401 (a token revoked, expired or unknown); not in `requests`. */
    unauthorizedRequests: () => unauthorizedRequests,
    setFaults(f: FakeGraphFaults) {
      faults = { ...f, ...(f.sendMail ? { sendMail: [...f.sendMail] } : {}) }
      entra.setFaults(f.token ?? [])
    },
    /** Files the messages accepted unfiled (FakeGraphFaults.fileLate); returns how many. */
    fileLateMessages(): number {
      const late = accepted.filter((a) => a.unfiled)
      for (const a of late) a.unfiled = false
      return late.length
    },
    /** Makes every issued token fail on Graph with 401 InvalidAuthenticationToken. */
    revokeTokens(reason: 'expired' | 'invalid' = 'expired') {
      entra.revokeTokens(reason)
    },
    resetMaxConcurrent() {
      maxConcurrent = inFlight
    },
    async stop() {
      for (const done of [...hung]) done()
      await server.stop(true)
    },
  }
}

export type FakeGraph = Awaited<ReturnType<typeof startFakeGraph>>

function outboxIdOf(raw: string): string | null {
  try {
    const body = JSON.parse(raw) as { message?: { internetMessageHeaders?: unknown } }
    const headers = (body.message?.internetMessageHeaders ?? []) as {
      name: string
      value: string
    }[]
    return headers.find((h) => h.name.toLowerCase() === 'x-outbox-id')?.value ?? null
  } catch {
    return null
  }
}

function graphError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  const requestId = randomUUID()
  return Response.json(
    {
      error: {
        code,
        message,
        innerError: {
          date: new Date().toISOString().slice(0, 19),
          'request-id': requestId,
          'client-request-id': requestId,
        },
      },
    },
    { status, headers: { 'request-id': requestId, 'client-request-id': requestId, ...headers } },
  )
}

/**
 * The Graph settings that point a transport at `fake`: certificate or secret left to the caller
 * (`overrides`), lookups on, resend as the ambiguous-send policy, 5 s requests.
 */
export function graphConfigFor(fake: FakeGraph, overrides: Partial<GraphConfig> = {}): GraphConfig {
  return {
    tenantId: fake.tenantId,
    clientId: fake.clientId,
    certificate: null,
    certificateFile: null,
    privateKey: null,
    privateKeyFile: null,
    clientSecret: null,
    assertionAlgorithm: 'PS256',
    authorityUrl: fake.authorityUrl,
    apiUrl: fake.apiUrl,
    saveToSentItems: true,
    requestTimeoutMs: 5_000,
    mailboxLookup: true,
    ambiguousSendPolicy: 'resend',
    ...overrides,
  }
}

/**
 * The variables that point a Graph transport at `fake` (loadConfig's input): its tenant, client and
 * URLs. A credential, MAIL_FROM and the rest are the caller's.
 */
export function graphEnvFor(fake: FakeGraph): Record<string, string> {
  return {
    MAIL_TRANSPORT: 'graph',
    GRAPH_TENANT_ID: fake.tenantId,
    GRAPH_CLIENT_ID: fake.clientId,
    GRAPH_AUTHORITY_URL: fake.authorityUrl,
    GRAPH_API_URL: fake.apiUrl,
  }
}
