// Graph's error text as we keep it: the code, message and request id of an error body, with every address taken out.

interface GraphError {
  code?: string
  message?: string
  requestId?: string
}

// A code as Graph spells them (`ErrorInvalidRecipients`, `Request_BadRequest`, `generalException`);
// anything else (a proxy's page, a 3 kB string) is not one, and the status names the error instead:
// last_error_code sits in the failed rows' index (0025), whose entries cannot pass ~2.7 kB.
const GRAPH_CODE = /^[A-Za-z][A-Za-z0-9_.-]{0,99}$/

/** `{"error":{"code","message","innerError":{"request-id"}}}`; anything else yields no fields. */
export function parseGraphError(bodyText: string): GraphError {
  if (bodyText === '') return {}
  try {
    const json = JSON.parse(bodyText) as { error?: Record<string, unknown> }
    const e = json.error
    if (!e || typeof e !== 'object') return {}
    const inner = (e.innerError ?? e.innererror) as Record<string, unknown> | undefined
    const requestId = inner?.['request-id']
    return {
      ...(typeof e.code === 'string' && GRAPH_CODE.test(e.code) ? { code: e.code } : {}),
      ...(typeof e.message === 'string' ? { message: redact(e.message) } : {}),
      ...(typeof requestId === 'string' ? { requestId } : {}),
    }
  } catch {
    return {}
  }
}

// Graph quotes recipients and mailboxes in its messages ("Recipient 'a@b.c' isn't resolved"), and
// some fetch errors quote the request URL, whose path holds the sender mailbox percent-encoded
// (`/users/a%40b.c/sendMail`); the message reaches logs and the attempt history, which must hold
// no addresses.
export function redact(message: string): string {
  return message.replace(/[^\s'"<>(),;:]+(?:@|%40)[^\s'"<>(),;:]+/gi, '[address]').slice(0, 500)
}
