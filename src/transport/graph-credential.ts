// The Entra app credential: loads the certificate + key (or a client secret) and gives each token request its proof (a certificate's: a client assertion, client-assertion.ts).
import { createHash, type X509Certificate } from 'node:crypto'
import type { GraphConfig } from '../config/graph-settings.ts'
import { isAppError } from '../errors.ts'
import { certificateValidityProblem } from './certificate-validity.ts'
import { signClientAssertion } from './client-assertion.ts'
import {
  invalidCredential,
  parseCertificate,
  parsePrivateKey,
  readPem,
} from './graph-credential-pem.ts'
import { GraphAuthError } from './graph-token-error.ts'

export type AssertionAlgorithm = 'PS256' | 'RS256'

/** The shortest RSA key PS256/RS256 may use (RFC 7518 §3.3: "2048 bits or larger MUST"); jose refuses less. */
const MIN_RSA_BITS = 2048

export interface CertificateCredential {
  readonly kind: 'certificate'
  readonly algorithm: AssertionAlgorithm
  /** base64url (no padding) SHA-1 of the DER certificate: the `x5t` header. */
  readonly x5t: string
  /** base64url (no padding) SHA-256 of the DER certificate: the `x5t#S256` header. */
  readonly x5tS256: string
  /** Epoch ms after which Entra will refuse the certificate. */
  readonly notAfter: number
}

interface SecretCredential {
  readonly kind: 'secret'
}

type CredentialInfo = CertificateCredential | SecretCredential

/** What the token request needs from a credential: the form fields that prove who we are. */
export interface GraphCredential {
  readonly info: CredentialInfo
  authFields(p: {
    tokenUrl: string
    clientId: string
    now: number
  }): Promise<Record<string, string>>
}

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/**
 * Loads the credential named by the Graph configuration. Throws AppError('config_invalid') for an
 * unreadable or garbled PEM, a key that does not belong to the certificate, or (`validity`
 * 'refuse', check-config's) a certificate outside its validity period at `now`. With
 * 'at-each-token' (serve's) such a certificate loads, and each token request made outside that
 * period is refused here, for good, as Entra would refuse it: a machine restarted after its
 * certificate's end keeps its API and health up and says why no mail goes, as one running
 * through that end does. Messages name the variable, never its value.
 */
export function loadGraphCredential(
  config: Pick<
    GraphConfig,
    | 'clientSecret'
    | 'certificate'
    | 'certificateFile'
    | 'privateKey'
    | 'privateKeyFile'
    | 'assertionAlgorithm'
  >,
  now: number,
  validity: 'refuse' | 'at-each-token' = 'refuse',
): GraphCredential {
  if (config.clientSecret) return secretCredential(config.clientSecret)
  const problems: string[] = []
  const certPem = noting(problems, () =>
    readPem(config.certificate, config.certificateFile, 'GRAPH_CERTIFICATE'),
  )
  const keyPem = noting(problems, () =>
    readPem(config.privateKey, config.privateKeyFile, 'GRAPH_PRIVATE_KEY'),
  )
  return certificateFrom(
    { certPem, keyPem, algorithm: config.assertionAlgorithm, now, validity },
    problems,
  )
}

export function secretCredential(secret: string): GraphCredential {
  return {
    info: { kind: 'secret' },
    authFields: async () => ({ client_secret: secret }),
  }
}

export function certificateCredential(p: {
  certPem: string
  keyPem: string
  algorithm: AssertionAlgorithm
  now: number
}): GraphCredential {
  return certificateFrom(p, [])
}

/** Every problem of the pair is named at once (`problems` holds those found reading them). */
function certificateFrom(
  p: {
    certPem: string | null
    keyPem: string | null
    algorithm: AssertionAlgorithm
    now: number
    validity?: 'refuse' | 'at-each-token'
  },
  problems: string[],
): GraphCredential {
  const { certPem, keyPem } = p
  const cert = certPem === null ? null : noting(problems, () => parseCertificate(certPem))
  const key = keyPem === null ? null : noting(problems, () => parsePrivateKey(keyPem))
  const bits = key?.asymmetricKeyDetails?.modulusLength ?? MIN_RSA_BITS
  if (key && key.asymmetricKeyType !== 'rsa') {
    problems.push(
      `GRAPH_PRIVATE_KEY: must be an RSA key (PS256/RS256), got ${key.asymmetricKeyType}`,
    )
  } else if (bits < MIN_RSA_BITS) {
    // Signing would fail at every token request, which reads as a network error, not at start.
    problems.push(
      `GRAPH_PRIVATE_KEY: is an RSA key of ${bits} bits; PS256/RS256 need at least ${MIN_RSA_BITS}`,
    )
  } else if (cert && key && !cert.checkPrivateKey(key)) {
    problems.push('GRAPH_PRIVATE_KEY: does not match the public key of GRAPH_CERTIFICATE')
  }
  const notBefore = cert ? Date.parse(cert.validFrom) : Number.NaN
  const notAfter = cert ? Date.parse(cert.validTo) : Number.NaN
  if (p.validity !== 'at-each-token') {
    const outside = certificateValidityProblem(p.now, notBefore, notAfter)
    if (outside) problems.push(`GRAPH_CERTIFICATE: ${outside.message}`)
  }
  if (problems.length > 0 || !cert || !key) throw invalidCredential(...problems)
  const info: CertificateCredential = {
    kind: 'certificate',
    algorithm: p.algorithm,
    x5t: thumbprint(cert, 'sha1'),
    x5tS256: thumbprint(cert, 'sha256'),
    notAfter,
  }
  return {
    info,
    authFields: async ({ tokenUrl, clientId, now }) => {
      const outside = certificateValidityProblem(now, notBefore, notAfter)
      if (outside) {
        throw new GraphAuthError(outside.code, `GRAPH_CERTIFICATE ${outside.message}`, true)
      }
      return {
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await signClientAssertion({ key, info, tokenUrl, clientId, now }),
      }
    },
  }
}

function thumbprint(cert: X509Certificate, hash: 'sha1' | 'sha256'): string {
  return createHash(hash).update(cert.raw).digest('base64url')
}

/** Runs one check; a credential problem it finds is noted (null returned) so the next still runs. */
function noting<T>(problems: string[], check: () => T): T | null {
  try {
    return check()
  } catch (e) {
    const found = isAppError(e, 'config_invalid') ? e.details?.problems : undefined
    if (!Array.isArray(found)) throw e
    problems.push(...(found as string[]))
    return null
  }
}

/** A certificate's SHA-1 thumbprint as Entra's portal lists it: upper-case hex of the `x5t`. */
export function portalThumbprint(x5t: string): string {
  return Buffer.from(x5t, 'base64url').toString('hex').toUpperCase()
}
