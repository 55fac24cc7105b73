// Credential report: what check-config says of the Graph credential it loaded, and its certificate's expiry.
import { type GraphCredential, portalThumbprint } from '../transport/graph-credential.ts'

/** Warns this long before a certificate expires: enough time to register and roll a second one. */
const CERT_EXPIRY_WARNING_DAYS = 30
const DAY_MS = 86_400_000

export function describeCredential(c: GraphCredential, now: number): string[] {
  if (c.info.kind === 'secret') return ['Graph credential: client secret (GRAPH_CLIENT_SECRET)']
  const days = Math.floor((c.info.notAfter - now) / DAY_MS)
  const lines = [
    `Graph credential: certificate ${portalThumbprint(c.info.x5t)} (as the Entra portal shows it), key matches, ` +
      `valid until ${new Date(c.info.notAfter).toISOString()}, assertion ${c.info.algorithm}`,
  ]
  if (days < CERT_EXPIRY_WARNING_DAYS) {
    lines.push(
      `warning: the Graph certificate expires in ${days} day(s): register a new one and rotate (deploy/README.md)`,
    )
  }
  return lines
}
