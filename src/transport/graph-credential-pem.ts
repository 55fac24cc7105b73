// The Graph credential's PEM inputs: read inline or from a file, then parsed; a problem names the variable, never its value.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { pemFileProblem } from '../config/pem-file.ts'
import { AppError } from '../errors.ts'

export function readPem(inline: string | null, file: string | null, name: string): string {
  if (inline) return normalizePem(inline)
  if (!file)
    throw invalidCredential(`${name} or ${name}_FILE is required with a certificate credential`)
  const unfit = pemFileProblem(file)
  if (unfit) throw invalidCredential(`${name}_FILE: ${unfit}: set it to the path of the PEM file`)
  try {
    return normalizePem(fileText(readFileSync(file)))
  } catch (e) {
    const code = (e as { code?: unknown }).code
    throw invalidCredential(
      `${name}_FILE: cannot be read (${typeof code === 'string' ? code : 'error'})`,
    )
  }
}

/**
 * A PEM file's text: UTF-8, or UTF-16 when it opens with that encoding's mark (PowerShell 5's `>`
 * and Out-File save so; read as UTF-8, no BEGIN line was found in it). The decoder drops the mark.
 */
function fileText(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes)
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes)
  return bytes.toString('utf8')
}

// Secret stores and .env files often flatten a PEM onto one line with literal "\n" sequences. A
// file saved by a Windows editor may open with a byte order mark, which readFileSync keeps: the
// key's parser (unlike the certificate's block search) then found no BEGIN line.
function normalizePem(pem: string): string {
  const text = pem.replace(/^\ufeff/, '')
  return text.includes('\n') ? text : text.replaceAll('\\n', '\n')
}

export function parseCertificate(pem: string): X509Certificate {
  // A chain file starts with the leaf; Entra identifies the app by the leaf only.
  const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0]
  if (!leaf) throw invalidCredential(notPem('GRAPH_CERTIFICATE', pem))
  try {
    return new X509Certificate(leaf)
  } catch {
    throw invalidCredential('GRAPH_CERTIFICATE: the PEM certificate cannot be parsed')
  }
}

export function parsePrivateKey(pem: string): KeyObject {
  if (!/-----BEGIN (RSA |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw invalidCredential(notPem('GRAPH_PRIVATE_KEY', pem))
  }
  // PKCS#8 says so in its header; a PKCS#1 key (BEGIN RSA PRIVATE KEY) in a Proc-Type line after it.
  if (pem.includes('BEGIN ENCRYPTED PRIVATE KEY') || /Proc-Type:\s*4,\s*ENCRYPTED/.test(pem)) {
    throw invalidCredential('GRAPH_PRIVATE_KEY: is encrypted; provide an unencrypted PKCS#8 key')
  }
  try {
    return createPrivateKey(pem)
  } catch {
    throw invalidCredential('GRAPH_PRIVATE_KEY: the PEM private key cannot be parsed')
  }
}

const SWAPPED = '(GRAPH_CERTIFICATE and GRAPH_PRIVATE_KEY swapped?)'
/** A SHA-1 or SHA-256 fingerprint in hex, either case, its bytes apart by colons (openssl) or not (the portal). */
const THUMBPRINT =
  /^(?:(?:[0-9a-f]{2}:){19}|(?:[0-9a-f]{2}:){31})[0-9a-f]{2}$|^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i

/**
 * Why a value holds no PEM block of the kind its variable takes, and what to set instead: the
 * likely slips are a file's path where its contents go, and the certificate and key swapped. The
 * value is never echoed, a path included.
 */
function notPem(name: 'GRAPH_CERTIFICATE' | 'GRAPH_PRIVATE_KEY', value: string): string {
  const cert = name === 'GRAPH_CERTIFICATE'
  const v = value.trim()
  if (!v.includes('-----') && /^(\/|\.{1,2}\/|~\/)\S*$|^\S+\.(pem|crt|cer|key)$/i.test(v)) {
    return `${name}: holds a file path, not the PEM: set ${name}_FILE to the path, or ${name} to the file's contents ("$(cat <file>)")`
  }
  // Other tools (MSAL, Azure SDKs) take a thumbprint beside the key; this one computes it.
  if (cert && THUMBPRINT.test(v)) {
    return `${name}: holds a certificate thumbprint, not the certificate: set it to the .crt file's contents (${name}="$(cat <file>.crt)"); the thumbprint is computed from it (check-config prints it as the portal shows it)`
  }
  // The block it holds instead, named as its file shows it: "no BEGIN PRIVATE KEY block" read as
  // nonsense beside a file that says BEGIN EC PRIVATE KEY.
  const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(v)?.[1]
  if (cert && label?.endsWith('PRIVATE KEY'))
    return `${name}: holds a private key, not a certificate ${SWAPPED}`
  if (!cert && label === 'CERTIFICATE')
    return `${name}: holds a certificate, not a private key ${SWAPPED}`
  if (label?.endsWith('PUBLIC KEY')) {
    return cert
      ? `${name}: holds a public key (BEGIN ${label}), not the certificate: set it to the certificate uploaded to the app registration (BEGIN CERTIFICATE)`
      : `${name}: holds a public key (BEGIN ${label}), not the private key: set it to the private key the certificate was made with (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)`
  }
  if (cert && label?.endsWith('CERTIFICATE REQUEST'))
    return `${name}: holds a certificate signing request (BEGIN ${label}), not the certificate: set it to the certificate issued for it (BEGIN CERTIFICATE)`
  if (!cert && (label === 'EC PRIVATE KEY' || label === 'DSA PRIVATE KEY'))
    return `${name}: must be an RSA key (PS256/RS256), got ${label.split(' ')[0]!.toLowerCase()} (BEGIN ${label})`
  if (!cert && label === 'OPENSSH PRIVATE KEY')
    return `${name}: is in OpenSSH’s format (BEGIN OPENSSH PRIVATE KEY), not PEM: convert a copy with \`ssh-keygen -p -m PKCS8 -f <copy>\` (the RSA key the certificate was made with)`
  return cert
    ? `${name}: is not a PEM certificate (no BEGIN CERTIFICATE block)`
    : `${name}: is not a PEM private key (no BEGIN PRIVATE KEY block)`
}

/** The one error of an unusable credential: every problem found, at once. */
export function invalidCredential(...problems: string[]): AppError {
  return new AppError('config_invalid', `invalid Graph credential: ${problems.join('; ')}`, {
    problems,
  })
}
