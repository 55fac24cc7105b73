// How an address written as text is read, one rule for MAIL_FROM's start check and the renderer: `Name <address>` split, or a Graph user id.

/** A Graph user id: Graph sends from /users/{id} as from /users/{upn}, and sets From itself. */
const GRAPH_USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// "Display Name <address>": the address is the last <…> group; the name may contain anything.
const NAMED = /^(.*)<([^<>]+)>\s*$/s
// A name in RFC 5322 double quotes ("Smith, Jones & Co", "Ann <a@b.c>") is the writer's own.
const QUOTED = /^"[^"]*"$/s
// What in an unquoted name reads as an address: a word (between blanks, < > , ; ") with an @ that
// has a character on either side. Split, not matched by a repeated class: linear on a name of any
// length a column may render.
const WORD_BREAK = /[\s<>,;"]+/
const ADDRESS_WORD = /^[^@]+@[^@]+$/
// Around an address in prose, not of it: "(ann@x)", "'ann@x'", "mailto:ann@x", "ann@x." name that
// address. Stripped by index, not by a regular expression (a run of them stays linear).
const AROUND = `()[]{}'\`.:!?`
const MAILTO = 'mailto:'

/** The address a word of a name holds, lowercased, without the marks prose puts around one. */
function bareAddress(word: string): string {
  const strip = (w: string) => {
    let i = 0
    let j = w.length
    while (i < j && AROUND.includes(w.charAt(i))) i++
    while (j > i && AROUND.includes(w.charAt(j - 1))) j--
    return w.slice(i, j)
  }
  const w = strip(word.toLowerCase())
  return w.startsWith(MAILTO) ? strip(w.slice(MAILTO.length)) : w
}

/** Whether `s` (trimmed) names a mailbox by its Graph user id rather than by an address. */
export const isGraphUserId = (s: string): boolean => GRAPH_USER_ID.test(s.trim())

/**
 * `Name <address>` (the name maybe in double quotes) split into its address and name, or the whole
 * string as the address; trimmed, not judged (the caller holds the address to its own bar). The
 * name may hold anything: MAIL_FROM's and send-test's are the operator's own ("ACME@Home, Inc.").
 */
export function splitNamedAddress(raw: string): { address: string; name?: string } {
  return splitAt(raw, NAMED.exec(raw))
}

/**
 * A template's address as rendered from row data, split as splitNamedAddress splits it, except that
 * an unquoted name holding an address other than its own <address> (its own in brackets, quotes,
 * as a mailto: link or closing a sentence is its own) is no name: the whole string is
 * the address, which no address rule takes. A column of several ("Ann <a@b.c>, Bob <b@c.d>", "a@b.c
 * Bob <b@c.d>") read as one would go to the last address alone, the others lost; the visitor's own
 * address typed as the name ("ann@x <ann@x>") loses none and is taken.
 */
export function splitRenderedAddress(raw: string): { address: string; name?: string } {
  const found = NAMED.exec(raw)
  const head = found?.[1]?.trim() ?? ''
  const own = found?.[2]?.trim().toLowerCase()
  const others =
    found !== null &&
    !QUOTED.test(head) &&
    head
      .split(WORD_BREAK)
      .some((w) => ADDRESS_WORD.test(w) && w.toLowerCase() !== own && bareAddress(w) !== own)
  return splitAt(raw, others ? null : found)
}

function splitAt(raw: string, named: RegExpExecArray | null): { address: string; name?: string } {
  const address = (named ? named[2] : raw)?.trim() ?? ''
  const name = named?.[1]?.trim().replace(/^"(.*)"$/s, '$1')
  return name ? { address, name } : { address }
}
