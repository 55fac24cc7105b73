// How an address written as text is read, one rule for MAIL_FROM's start check and the renderer: `Name <address>` split, or a Graph user id.

/** A Graph user id: Graph sends from /users/{id} as from /users/{upn}, and sets From itself. */
const GRAPH_USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// "Display Name <address>": the address is the last <…> group; the name may contain anything but
// another address (NAME_HOLDS_ADDRESS) unless it is in double quotes.
const NAMED = /^(.*)<([^<>]+)>\s*$/s
// A name in RFC 5322 double quotes ("Smith, Jones & Co", "Ann <a@b.c>") is the writer's own: taken.
const QUOTED = /^"[^"]*"$/s
// An unquoted name holding an address (an @ with a character of an address on either side) beside
// a list's marks (< > , ;): a list in one string ("Ann <a@b.c>, Bob <b@c.d>", "a@b.c, Bob <b@c.d>")
// read as one would go to the last address alone, the others lost. A bare address alone in the name
// ("ann@x <ann@x>": a visitor typed it into the form's name field) loses none and is taken; "Tom &
// <Jerry>", "Ann @ Home" hold no address.
const NAME_HOLDS_ADDRESS = /[^\s<>,;"@]@[^\s<>,;"@]/
const LIST_MARK = /[<>,;]/
const namesAList = (head: string) => NAME_HOLDS_ADDRESS.test(head) && LIST_MARK.test(head)

/** Whether `s` (trimmed) names a mailbox by its Graph user id rather than by an address. */
export const isGraphUserId = (s: string): boolean => GRAPH_USER_ID.test(s.trim())

/**
 * `Name <address>` (the name maybe in double quotes) split into its address and name, or the whole
 * string as the address; trimmed, not judged (the caller holds the address to its own bar). A name
 * holding another address and a list's mark outside double quotes is no name: the whole string is
 * the address, which no address rule takes, so a list in one string is refused rather than sent to
 * its last address.
 */
export function splitNamedAddress(raw: string): { address: string; name?: string } {
  const found = NAMED.exec(raw)
  const head = found?.[1]?.trim() ?? ''
  const named = found && (QUOTED.test(head) || !namesAList(head)) ? found : null
  const address = (named ? named[2] : raw)?.trim() ?? ''
  const name = named?.[1]?.trim().replace(/^"(.*)"$/s, '$1')
  return name ? { address, name } : { address }
}
