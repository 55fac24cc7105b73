// Redactor: scrubs every secret value of the environment from what check-config prints.
// Driver and Entra messages can quote what they were given, a database URL included.

/**
 * Where a database URL holds its password, with the password masked: `user:password@` (as written
 * and percent-decoded) and `password=…`. Only there: a password that is also a word of a message or
 * part of the host (`postgres`, `internal`) must not blank those out ("must be a ***:// URL",
 * "db.***.com").
 */
function passwordMasks(url: string): [string, string][] {
  // pg also takes the password as a query parameter: ?password=…
  const query = /[?&]password=([^&#]*)/.exec(url)?.[1]
  const masks: [string, string][] = query ? [[`password=${query}`, 'password=***']] : []
  return [...masks, ...userinfoMasks(url)]
}

function userinfoMasks(url: string): [string, string][] {
  // As written, so a raw character a URL parser would re-encode still matches: the authority's
  // last `@` before its path ends the userinfo, its first `:` starts the password.
  const userinfo = /^[^:/?#]+:\/\/([^/?#]*)@/.exec(url)?.[1] ?? ''
  const colon = userinfo.indexOf(':')
  if (colon < 0) return []
  const [user, password] = [userinfo.slice(0, colon), userinfo.slice(colon + 1)]
  if (!password) return []
  const masks: [string, string][] = [[`${user}:${password}@`, `${user}:***@`]]
  try {
    const [u, p] = [decodeURIComponent(user), decodeURIComponent(password)]
    masks.push([`${u}:${p}@`, `${u}:***@`])
  } catch {}
  return masks
}

export function redactor(env: Record<string, string | undefined>): (s: string) => string {
  const masks = new Map<string, string>()
  const add = (v: string | undefined) => {
    if (v && v.trim().length >= 4) masks.set(v.trim(), '***')
  }
  for (const name of [
    'GRAPH_CLIENT_SECRET',
    'GRAPH_PRIVATE_KEY',
    'API_JWT_SECRET',
    'API_JWT_SECRET_PREVIOUS',
  ])
    add(env[name])
  const urls = [env.DATABASE_URL, env.LISTEN_DATABASE_URL]
  try {
    const list = JSON.parse(env.MAILER_DATABASES ?? '[]') as {
      url?: unknown
      listenUrl?: unknown
    }[]
    if (Array.isArray(list)) {
      for (const d of list) {
        if (typeof d?.url === 'string') urls.push(d.url)
        if (typeof d?.listenUrl === 'string') urls.push(d.listenUrl)
      }
    }
  } catch {}
  for (const u of urls) {
    for (const [found, masked] of u ? passwordMasks(u.trim()) : []) masks.set(found, masked)
  }
  // Longest first: a secret that contains another is masked whole.
  const sorted = [...masks].sort(([a], [b]) => b.length - a.length)
  return (s) => sorted.reduce((acc, [found, masked]) => acc.split(found).join(masked), s)
}
