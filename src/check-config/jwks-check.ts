// JWKS check: fetches API_JWKS_URL and expects a non-empty key set.
import { describe, type Findings } from './findings.ts'

export async function checkJwks(url: string, fetchFn: typeof fetch, timeoutMs: number) {
  const out: Findings = { problems: [], checks: [] }
  try {
    const res = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs) })
    const body = (await res.json().catch(() => null)) as { keys?: unknown } | null
    if (res.ok && Array.isArray(body?.keys) && body.keys.length > 0) {
      out.checks.push(`API_JWKS_URL: ${body.keys.length} key(s)`)
    } else {
      out.problems.push(`API_JWKS_URL: answered HTTP ${res.status} without a non-empty "keys" list`)
    }
  } catch (e) {
    out.problems.push(`API_JWKS_URL: cannot be fetched: ${describe(e)}`)
  }
  return out
}
