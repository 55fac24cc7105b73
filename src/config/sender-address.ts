// How an address written as text is read, one rule for MAIL_FROM's start check and the renderer: `Name <address>` split, or a Graph user id.

/** A Graph user id: Graph sends from /users/{id} as from /users/{upn}, and sets From itself. */
const GRAPH_USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// "Display Name <address>": the address is the last <…> group; the name may contain anything.
const NAMED = /^(.*)<([^<>]+)>\s*$/s

/** Whether `s` (trimmed) names a mailbox by its Graph user id rather than by an address. */
export const isGraphUserId = (s: string): boolean => GRAPH_USER_ID.test(s.trim())

/**
 * `Name <address>` (the name maybe in double quotes) split into its address and name, or the whole
 * string as the address; trimmed, not judged (the caller holds the address to its own bar).
 */
export function splitNamedAddress(raw: string): { address: string; name?: string } {
  const named = NAMED.exec(raw)
  const address = (named ? named[2] : raw)?.trim() ?? ''
  const name = named?.[1]?.trim().replace(/^"(.*)"$/s, '$1')
  return name ? { address, name } : { address }
}
