// What an Entra refusal's AADSTS code means for the operator, and what to do: one wording for check-config, /readyz and the log.

// The codes a first deploy or a credential's end meets; graph.md §1.3 lists them.
const HINTS: Record<string, string> = {
  AADSTS700027:
    'the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration',
  AADSTS7000215: 'the client secret is wrong: copy the secret value, not its id',
  AADSTS7000222: 'the client secret has expired: create a new one',
  AADSTS700016: 'no such app in this tenant: check GRAPH_CLIENT_ID and GRAPH_TENANT_ID',
  AADSTS90002: 'no such tenant: check GRAPH_TENANT_ID',
  AADSTS7000112: 'the app registration is disabled',
  // Refused here, before Entra is asked (graph-credential.ts): Entra refuses such a key too.
  certificate_expired:
    'GRAPH_CERTIFICATE has passed its end date: register a new certificate on the app and set it (deploy guide, step 12)',
  certificate_not_yet_valid:
    "GRAPH_CERTIFICATE is not valid yet: check its start date and this machine's clock",
  // The assertion's nbf/exp are this machine's time; Entra allows a few minutes either way.
  AADSTS700024:
    "the client assertion's time window, read from this machine's clock, is not Entra's time: set the clock right (NTP)",
}

/** The operator's reading of an Entra code, or undefined for one without a known remedy. */
export function entraRefusalHint(code: string): string | undefined {
  return Object.hasOwn(HINTS, code) ? HINTS[code] : undefined
}
