// The Graph credential's problems when the configuration has others: one run of check-config names them all.
import { parseVariables } from '../config/env-schema.ts'
import type { ServeRole } from '../config.ts'
import { loadGraphCredential } from '../transport/graph-credential.ts'

// A problem of the configuration about the credential itself (a variable refused, two set, none):
// then it is named already, and reading the credential would only say it again.
const CREDENTIAL_PROBLEM =
  /^(GRAPH_CERTIFICATE|GRAPH_CERTIFICATE_FILE|GRAPH_PRIVATE_KEY|GRAPH_PRIVATE_KEY_FILE|GRAPH_CLIENT_SECRET|GRAPH_ASSERTION_ALGORITHM|MAIL_TRANSPORT)\b|a Graph credential is required/

/**
 * The problems reading the certificate and key would find (a thumbprint where the certificate goes,
 * a key that does not match it), read as `serve` reads them once the configuration is valid; none
 * when the role sends nothing, the transport is not Graph, a client secret is the credential, or the
 * configuration's `problems` name the credential already. Never throws.
 */
export function credentialProblemsBeside(
  env: Record<string, string | undefined>,
  role: ServeRole,
  problems: readonly string[],
  now: number,
): string[] {
  if (role === 'api' || problems.some((p) => CREDENTIAL_PROBLEM.test(p))) return []
  const { values: e } = parseVariables(env)
  const cert = e.GRAPH_CERTIFICATE ?? e.GRAPH_CERTIFICATE_FILE
  const key = e.GRAPH_PRIVATE_KEY ?? e.GRAPH_PRIVATE_KEY_FILE
  if (e.MAIL_TRANSPORT !== 'graph' || e.GRAPH_CLIENT_SECRET || !cert || !key) return []
  try {
    loadGraphCredential(
      {
        clientSecret: null,
        certificate: e.GRAPH_CERTIFICATE ?? null,
        certificateFile: e.GRAPH_CERTIFICATE_FILE ?? null,
        privateKey: e.GRAPH_PRIVATE_KEY ?? null,
        privateKeyFile: e.GRAPH_PRIVATE_KEY_FILE ?? null,
        assertionAlgorithm: e.GRAPH_ASSERTION_ALGORITHM,
      },
      now,
    )
    return []
  } catch (err) {
    const listed = (err as { details?: { problems?: unknown } }).details?.problems
    return Array.isArray(listed) ? listed.map(String) : [(err as Error).message]
  }
}
