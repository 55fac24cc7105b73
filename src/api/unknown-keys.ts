// A closed object's refusal of keys it does not take: each key named at its own path, with the keys the object takes and where one a level off belongs (inside a field, or next to the object).

type Issue = { path: PropertyKey[]; message: string; code?: string; keys?: string[] }

// Each closed object's message, and where each key it knows to be a level off belongs, said so.
// Keyed by the message, which names the object's own keys, so two objects share an entry only when
// they take the same keys.
const HOMES = new Map<string, ReadonlyMap<string, string>>()

/** Keys that belong next to the object, in the one holding it at `field`: a body's key in "filter". */
export interface OuterHome {
  field: string
  keys: Iterable<string>
}

/**
 * The `error` option of a z.strictObject taking `taken`: a key it does not take is "not `what`
 * (its keys)", and one listed in `homes` (an option beside "message") is told which field it
 * belongs inside, one in `outer` (a cursor inside "filter") that it belongs next to the object.
 * Any other issue keeps zod's message.
 */
export function closedKeys(
  what: string,
  taken: readonly string[],
  homes: Record<string, Iterable<string>> = {},
  outer?: OuterHome,
) {
  return keysRefusedAs(`is not ${what} (${taken.join(', ')})`, homes, outer)
}

/** The `error` option of a z.strictObject whose refusal of a key it does not take is `message`, said per key. */
export function keysRefusedAs(
  message: string,
  homes: Record<string, Iterable<string>> = {},
  outer?: OuterHome,
) {
  const home = new Map<string, string>()
  for (const [field, keys] of Object.entries(homes)) {
    for (const k of keys) home.set(k, `it belongs inside "${field}"`)
  }
  if (outer) {
    for (const k of outer.keys) home.set(k, `it belongs next to "${outer.field}", not inside it`)
  }
  HOMES.set(message, home)
  return {
    error: (iss: { code?: string }) => (iss.code === 'unrecognized_keys' ? message : undefined),
  }
}

/**
 * A closed object's refusal said per key, at the key's path (`bogus`, not the object's); any
 * other issue, and a refusal by an object closedKeys did not build, as it is.
 */
export function eachUnknownKey<I extends Issue>(issue: I): I[] {
  const home = HOMES.get(issue.message)
  if (issue.code !== 'unrecognized_keys' || !issue.keys || !home) return [issue]
  return issue.keys.map((k) => {
    const where = home.get(k)
    const message = where ? `${issue.message}: ${where}` : issue.message
    return { ...issue, path: [...issue.path, k], message }
  })
}
