// What an attachment's contentType must be, at enqueue (POST /v1/outbox) and at send: the rule of mailer.is_mime_type (sql/0020).

// RFC 2045 token: printable ASCII but space and ()<>@,;:\"/[]?=.
const TOKEN = "[!#$%&'*+.^_`{|}~0-9A-Za-z-]+"
// A quoted parameter value: printable ASCII, a quote or backslash only escaped.
const QUOTED = '"([\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\x20-\\x7e])*"'

/**
 * type/subtype, then optional `; name=value` parameters, spaces (no other whitespace) around the
 * semicolons. No control character can pass: the value becomes a Content-Type header as it is.
 */
export const MIME_TYPE = new RegExp(`^${TOKEN}/${TOKEN}( *; *${TOKEN}=(${TOKEN}|${QUOTED}))* *$`)

export const MIME_TYPE_MESSAGE =
  'must be a MIME type: type/subtype, then optional ; name=value parameters (e.g. text/plain; charset=utf-8)'
