// GRAPH_TENANT_ID and GRAPH_CLIENT_ID against the forms Entra takes in a token request: a value no token can come from is refused at start, saying where the right one is shown.

/** A GUID as the Entra admin center shows it and Entra writes it (tid, iss, appid): 8-4-4-4-12, either case. */
export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const NIL_GUID = '00000000-0000-0000-0000-000000000000'
const BRACED = /^\{([0-9a-f-]{36})\}$|^\(([0-9a-f-]{36})\)$/i
const UNDASHED = /^[0-9a-f]{32}$/i
// A GUID typed or copied wrong (a digit short, a letter past f): hex-like characters with its dashes,
// no dot, a few slips at most (HEX_AT_LEAST of its 32 digits); a name of dashed words is no GUID.
const GUID_LIKE = /^(?=(?:[^-]*-){3})[0-9a-z-]{30,40}$/i
const HEX_AT_LEAST = 28
const guidLike = (v: string) =>
  GUID_LIKE.test(v) && !v.includes('.') && (v.match(/[0-9a-f]/gi)?.length ?? 0) >= HEX_AT_LEAST
// A domain's label: letters (any script, with their marks), digits and hyphens; punycode is such.
const LABEL = /^[\p{L}\p{M}\p{N}-]+$/u

// Entra's multi-tenant aliases: a token request for an app's own permissions must name its tenant.
const NO_TENANT = new Set(['common', 'organizations', 'consumers'])

const TENANT_ID_SHOWN =
  "the Directory (tenant) ID is a GUID, 8-4-4-4-12 hexadecimal digits (as the app registration's Overview page in the Entra admin center shows it)"
const CLIENT_ID_SHOWN =
  "the Application (client) ID is a GUID, 8-4-4-4-12 hexadecimal digits, shown on the app registration's Overview page in the Entra admin center (App registrations → the app → Overview)"

/**
 * How a GUID written in another of its forms (braces, parentheses, no dashes) is written as the
 * admin center shows it, or null. Entra's documents give the tenant "in GUID or domain name
 * format" and the client id as the portal shows it, 8-4-4-4-12, never another form: such a value
 * is refused saying how to write it (a braced GUID quoted: it is no secret), not rewritten unseen.
 */
function otherGuidForm(v: string): string | null {
  const braced = BRACED.exec(v)
  const inner = braced?.[1] ?? braced?.[2]
  if (inner && GUID.test(inner)) return `write it without braces, ${inner}`
  // Not quoted: 32 hexadecimal digits may as well be some secret pasted one field off.
  if (UNDASHED.test(v)) return 'write it with its dashes, after the 8th, 12th, 16th and 20th digit'
  return null
}

/**
 * What is wrong with a GRAPH_TENANT_ID no app-only token can come from, or null: an alias that
 * names no tenant, a URL copied whole, an address, a GUID mistyped or a placeholder (AADSTS90002:
 * "Tenant identifiers may not be an empty GUID"), a name with no domain suffix or no DNS name at
 * all (AADSTS90002, AADSTS900023 "neither a valid DNS name, nor a valid external domain"). A GUID
 * in either case, or a domain name, is left to Entra: whether the tenant has it, Entra alone knows.
 */
export function tenantProblem(v: string): string | null {
  if (NO_TENANT.has(v.toLowerCase())) {
    return `GRAPH_TENANT_ID: "${v.toLowerCase()}" names no tenant, and an app-only token comes from one: set the Directory (tenant) ID of the app registration's Overview page (a GUID), or a domain of the tenant (contoso.onmicrosoft.com)`
  }
  if (/[/:\s]/.test(v)) {
    return "GRAPH_TENANT_ID: must be the tenant's id alone (a GUID, or a domain of the tenant such as contoso.onmicrosoft.com), not a URL: the token URL is made of GRAPH_AUTHORITY_URL, this id and /oauth2/v2.0/token"
  }
  if (v.includes('@')) {
    return "GRAPH_TENANT_ID: holds an @ (a user's address?): set the tenant's domain alone, the part after the @ (contoso.onmicrosoft.com), or its Directory (tenant) ID shown on the app registration's Overview page in the Entra admin center"
  }
  const form = otherGuidForm(v)
  if (form) return `GRAPH_TENANT_ID: ${form}: ${TENANT_ID_SHOWN}`
  if (v === NIL_GUID) {
    return `GRAPH_TENANT_ID: is the all-zero GUID, a placeholder (fly.toml's), which Entra refuses (AADSTS90002): set your tenant's: ${TENANT_ID_SHOWN}`
  }
  if (GUID.test(v)) return null
  if (guidLike(v)) {
    return `GRAPH_TENANT_ID: is not a GUID (a digit more or less, or a character that is no hexadecimal digit): ${TENANT_ID_SHOWN}`
  }
  const labels = v.split('.')
  const domain =
    labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!)
  if (domain) return null
  return "GRAPH_TENANT_ID: is neither a tenant id (a GUID) nor a domain of the tenant: set the Directory (tenant) ID shown on the app registration's Overview page in the Entra admin center (App registrations → the app → Overview), or a verified domain written whole, with its suffix (contoso.onmicrosoft.com, not contoso), as the admin center lists them under Domain names"
}

/**
 * What is wrong with a GRAPH_CLIENT_ID, or null: an app's client id is a GUID and nothing else
 * (AADSTS700016 at every token request otherwise). The value is never said: the likely slips are
 * the app's name and the client secret's value, pasted one field off.
 */
export function clientIdProblem(v: string): string | null {
  if (GUID.test(v) && v !== NIL_GUID) return null
  const form = otherGuidForm(v)
  if (form) return `GRAPH_CLIENT_ID: ${form}: ${CLIENT_ID_SHOWN}`
  if (v === NIL_GUID) {
    return `GRAPH_CLIENT_ID: is the all-zero GUID, a placeholder (fly.toml's), which names no app: set your app's: ${CLIENT_ID_SHOWN}`
  }
  return `GRAPH_CLIENT_ID: is not a GUID: ${CLIENT_ID_SHOWN}; not the app's name, nor a client secret's value`
}
