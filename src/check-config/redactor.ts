// Redactor: scrubs every secret value of the environment from what check-config prints.
// Driver and Entra messages can quote what they were given, a URL's password included.
export function redactor(env: Record<string, string | undefined>): (s: string) => string {
  const secrets = new Set<string>()
  const add = (v: string | undefined) => {
    if (v && v.trim().length >= 4) secrets.add(v.trim())
  }
  for (const name of ['GRAPH_CLIENT_SECRET', 'GRAPH_PRIVATE_KEY', 'API_JWT_SECRET']) add(env[name])
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
    add(u)
    try {
      if (u) add(decodeURIComponent(new URL(u).password))
    } catch {}
  }
  const sorted = [...secrets].sort((a, b) => b.length - a.length)
  return (s) => sorted.reduce((acc, secret) => acc.split(secret).join('***'), s)
}
