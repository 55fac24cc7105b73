// What a database URL must be, checked at the start rather than at every connection.
import { isIP } from 'node:net'
import { parse as parseConnectionString } from 'pg-connection-string'
import { z } from 'zod'
import { pemEncodingProblem, pemFileProblem } from './pem-file.ts'
import { percentEncodingProblem } from './url-percent-encoding.ts'

/**
 * What is wrong with a database URL, in words that never repeat it (it may hold a password): what
 * the driver's own parser refuses, which would otherwise pass the start and fail every connection.
 * What it accepts stays accepted: no host (a Unix socket in ?host=, or PGHOST), no database name
 * (the user's), IPv6 hosts, percent-encoded passwords.
 */
function databaseUrlProblem(value: string): string | null {
  if (!/^postgres(ql)?:\/\//.test(value)) return 'must be a postgres:// or postgresql:// URL'
  // The parser drops what follows a # (a fragment, which no Postgres URL has): a password holding
  // one unencoded is cut there and the rest read as the host ('ENOTFOUND' plus a piece of it).
  if (value.includes('#')) {
    return 'has a # (what follows it is dropped as a fragment): a password holding one must percent-encode it as %23 (and @ : / ? as %40 %3A %2F %3F)'
  }
  const encoding = percentEncodingProblem(value)
  if (encoding) return encoding
  // The parser reads these files as it parses: each is checked first, and named when it fails.
  for (const [key, path] of queryPairs(value)) {
    if (!PEM_FILES.has(key) || path === '') continue
    const unfit = pemFileProblem(path)
    if (unfit)
      return `its ${key} ${unfit}: set it to the path of the PEM file (deploy guide, step 4)`
    const encoding = pemEncodingProblem(path)
    if (encoding) return `its ${key} file ${encoding} (deploy guide, step 4)`
  }
  let parsed: { sslmode?: unknown; port?: unknown }
  try {
    // The options type names no sslmode, which the parser keeps as every query parameter.
    parsed = parseConnectionString(value) as { sslmode?: unknown; port?: unknown }
  } catch {
    return 'is not a valid URL (check the host and port; a password must percent-encode @ : / # ?)'
  }
  const twice = settingGivenTwice(value)
  if (twice !== null) {
    return `gives ${twice} twice, with different values (the driver would take the last): give it once`
  }
  // The parser refuses :99999 in the host part but keeps ?port= as written (and :0): each
  // connection then failed, ERR_SOCKET_BAD_PORT "Received NaN" or ECONNREFUSED.
  const port = String(parsed.port ?? '')
  if (port !== '' && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return "its port must be a whole number from 1 to 65535 (the host's :5432, or ?port=5432)"
  }
  // The driver reads any sslmode but disable and no-verify as TLS with the certificate checked, a
  // slip included: `sslmode=disabled` asked a server without TLS for it, the opposite of what was
  // written, and each connection was refused (tls_refused). libpq refuses such a word; so does this.
  if (typeof parsed.sslmode === 'string' && !SSL_MODES.has(parsed.sslmode)) {
    // Only the guides' two are offered: require and prefer are read by node-postgres 9 as no
    // certificate check (README), allow is refused below.
    return "its sslmode is not one the driver knows: use sslmode=verify-full (TLS, the server's certificate checked), or sslmode=disable for a server that takes no TLS, on a private network only (deploy guide, step 4)"
  }
  // libpq's allow tries without TLS first and with it (no certificate check) only if the server
  // insists; node-postgres has no case for it and asks for TLS with the certificate checked, with
  // uselibpqcompat=true too. Mapped to disable it would lose libpq's second try against a server
  // that insists on TLS; so it is refused, naming the two that do what a user of allow meant.
  if (parsed.sslmode === 'allow') {
    return 'sslmode=allow is not one the driver can do (it would ask for TLS and check the certificate, where libpq tries without TLS first): use sslmode=disable for a server that takes no TLS, on a private network only, or sslmode=verify-full (deploy guide, step 4)'
  }
  return null
}

/**
 * The name of a setting the URL gives two values (a query parameter repeated, or the host part's
 * user, password, host or port given again as ?user= …), or null: the driver takes the last, so
 * `?sslmode=verify-full&sslmode=disable` (a platform's parameters appended to the user's) connected
 * without TLS. Only the name is said: the value may be a password. An empty value is none.
 */
function settingGivenTwice(value: string): string | null {
  const given = new Map(
    Object.entries(hostPart(value))
      .filter(([, v]) => v !== '')
      .map(([key, v]) => [key, settingRead(key, v)]),
  )
  for (const [key, written] of queryPairs(value)) {
    if (key === '' || written === '') continue
    const v = settingRead(key, written)
    const before = given.get(key)
    if (before !== undefined && before !== v) return key
    given.set(key, v)
  }
  return null
}

/**
 * A host or port as the connection reads it, so one written two ways is one value: a host name in
 * any case (names are case-insensitive; a socket's directory is a path, kept as written), an IPv6
 * address with or without its zeros, a port with a leading zero. Any other setting as written.
 */
function settingRead(key: string, v: string): string {
  if (key === 'port') return /^\d{1,5}$/.test(v) ? String(Number(v)) : v
  if (key !== 'host' || v.startsWith('/')) return v
  if (isIP(v) !== 6) return v.toLowerCase()
  try {
    return new URL(`http://[${v}]`).hostname
  } catch {
    // A zone (fe80::1%eth0) no URL takes: as written.
    return v.toLowerCase()
  }
}

/** The query's parameters in order, decoded as URLSearchParams reads them (a + is a blank). */
function queryPairs(value: string): [string, string][] {
  const at = value.indexOf('?')
  if (at < 0) return []
  return value
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      const [k, v] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)]
      return [decoded(k.replaceAll('+', ' ')), decoded(v.replaceAll('+', ' '))]
    })
}

// The files the driver's parser reads as it parses a URL (pg-connection-string).
const PEM_FILES = new Set(['sslrootcert', 'sslcert', 'sslkey'])

/** The settings the URL's host part gives, as the parser reads them (none when it reads no host part). */
function hostPart(value: string): Record<'user' | 'password' | 'host' | 'port', string> {
  try {
    const u = new URL(value)
    return {
      user: decoded(u.username),
      password: decoded(u.password),
      host: decoded(u.hostname.replace(/^\[(.+)\]$/, '$1')),
      port: u.port,
    }
  } catch {
    return { user: '', password: '', host: '', port: '' }
  }
}

// Escapes are well-formed here (percentEncodingProblem refused the URL otherwise); the catch is
// for safety's sake. (A query's + is a blank, as URLSearchParams reads it: the caller replaces it;
// the host part's is a +.)
function decoded(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

// libpq's sslmode words, and node-postgres's own no-verify.
const SSL_MODES = new Set('disable allow prefer require verify-ca verify-full no-verify'.split(' '))

export const pgUrl = z.string().superRefine((value, ctx) => {
  const problem = databaseUrlProblem(value)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})
