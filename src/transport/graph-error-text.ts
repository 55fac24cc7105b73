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
// no addresses (a tenant's token reads a template's own recipients in neither).

// What an address's text is made of: anything but blanks and the marks that delimit one in prose.
const IN_ADDRESS = /[^\s'"<>(),;:]/
const AT_SIGN = /@|%40/gi

/**
 * `message` with each address in it, from the run of text before its @ (or %40) to the run after,
 * replaced by `[address]`, then cut to 500 characters. An address's local part may hold an
 * apostrophe (`o'hara@b.c`: mailer.is_email_address takes it), the one character of its Graph also
 * quotes it with: the run before the @ takes apostrophes too, but does not begin with one. Each
 * character is read a bounded number of times, whatever Graph sent: the run before an @ is where
 * the text read so far last met a character outside it (not read back from each @: a run of `@'`
 * would be read once per @), and its leading apostrophes are skipped by a position that only moves
 * on, as the starts it is asked from only do.
 */
export function redact(message: string): string {
  let out = ''
  // message[0, done) is in `out`, its addresses replaced.
  let done = 0
  // message[0, read) has been read for runs: message[runFrom, read) is the run ending there.
  let read = 0
  let runFrom = 0
  // The first character at or past the last start asked that is not an apostrophe.
  let unquoted = 0
  for (const at of message.matchAll(AT_SIGN)) {
    if (at.index < done) continue
    let end = at.index + at[0].length
    while (end < message.length && IN_ADDRESS.test(message[end]!)) end++
    for (; read < at.index; read++) {
      const c = message[read]!
      if (c !== "'" && !IN_ADDRESS.test(c)) runFrom = read + 1
    }
    const start = Math.max(done, runFrom)
    if (unquoted < start) unquoted = start
    while (unquoted < at.index && message[unquoted] === "'") unquoted++
    if (unquoted === at.index || end === at.index + at[0].length) continue
    out += `${message.slice(done, unquoted)}[address]`
    done = end
  }
  return (out + message.slice(done)).slice(0, 500)
}
