// The Entra credential: PEM loading errors, and the client assertion's header and claims for both algorithms.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  X509Certificate,
} from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClientAssertion, CryptoProvider } from '@azure/msal-node'
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose'
import type { GraphConfig } from '../../src/config/graph-settings.ts'
import { loadConfig } from '../../src/config.ts'
import { AppError } from '../../src/errors.ts'
import { TOKEN_WAIT_CODE } from '../../src/outbox/settle-item.ts'
import {
  CLIENT_ASSERTION_TYPE,
  certificateCredential,
  loadGraphCredential,
} from '../../src/transport/graph-credential.ts'
import type { GraphAuthError } from '../../src/transport/graph-token-error.ts'
import { generateTestCertificate, type TestCertificate } from '../support/test-certificate.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Each test
// certificate is an RSA key made by openssl, seconds of CPU on a loaded machine.
setDefaultTimeout(30_000)

const NOW = Date.now()
const DAY = 86_400_000
const TOKEN_URL = 'https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token'
const CLIENT_ID = '11111111-2222-3333-4444-555555555555'

let good: TestCertificate
let other: TestCertificate
let expired: TestCertificate
let future: TestCertificate

beforeAll(async () => {
  ;[good, other, expired, future] = await Promise.all([
    generateTestCertificate(),
    generateTestCertificate(),
    generateTestCertificate({ notBefore: new Date(NOW - 30 * DAY), notAfter: new Date(NOW - DAY) }),
    generateTestCertificate({ notBefore: new Date(NOW + DAY), notAfter: new Date(NOW + 30 * DAY) }),
  ])
})

function config(over: Partial<GraphConfig>): GraphConfig {
  return {
    tenantId: 'tenant-1',
    clientId: CLIENT_ID,
    certificate: null,
    certificateFile: null,
    privateKey: null,
    privateKeyFile: null,
    clientSecret: null,
    assertionAlgorithm: 'PS256',
    authorityUrl: 'https://login.microsoftonline.com',
    apiUrl: 'https://graph.microsoft.com/v1.0',
    saveToSentItems: true,
    requestTimeoutMs: 10_000,
    mailboxLookup: false,
    ambiguousSendPolicy: 'resend',
    ...over,
  }
}

async function assertionOf(algorithm: 'PS256' | 'RS256') {
  const cred = certificateCredential({
    certPem: good.certPem,
    keyPem: good.keyPem,
    algorithm,
    now: NOW,
  })
  const fields = await cred.authFields({ tokenUrl: TOKEN_URL, clientId: CLIENT_ID, now: NOW })
  expect(fields.client_assertion_type).toBe(CLIENT_ASSERTION_TYPE)
  return fields.client_assertion!
}

/** The problems loading the credential names (none when it loads). */
function credentialProblems(cfg: Partial<GraphConfig>): unknown {
  try {
    loadGraphCredential(config(cfg), NOW)
  } catch (e) {
    return (e as AppError).details?.problems
  }
  return []
}

function expectConfigError(fn: () => unknown, pattern: RegExp, secret?: string) {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(AppError)
    expect((e as AppError).code).toBe('config_invalid')
    expect((e as AppError).message).toMatch(pattern)
    if (secret) expect((e as AppError).message).not.toContain(secret.slice(40, 80))
    return
  }
  throw new Error('expected a config_invalid error')
}

describe('client assertion', () => {
  test('PS256 by default: x5t#S256 header, PSS signature, claims as Entra wants them', async () => {
    const jwt = await assertionOf('PS256')
    const header = decodeProtectedHeader(jwt)
    const sha256 = new X509Certificate(good.certPem).fingerprint256.replaceAll(':', '')
    expect(header).toEqual({
      alg: 'PS256',
      typ: 'JWT',
      'x5t#S256': Buffer.from(sha256, 'hex').toString('base64url'),
    })
    const { payload } = await compactVerify(jwt, new X509Certificate(good.certPem).publicKey, {
      algorithms: ['PS256'],
    })
    const claims = JSON.parse(new TextDecoder().decode(payload))
    const now = Math.floor(NOW / 1000)
    expect(claims).toEqual({
      aud: TOKEN_URL,
      iss: CLIENT_ID,
      sub: CLIENT_ID,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      nbf: now,
      iat: now,
      exp: now + 600,
    })
  })

  test('RS256 when configured: x5t (SHA-1) header, PKCS#1 v1.5 signature', async () => {
    const jwt = await assertionOf('RS256')
    const sha1 = new X509Certificate(good.certPem).fingerprint.replaceAll(':', '')
    expect(decodeProtectedHeader(jwt)).toEqual({
      alg: 'RS256',
      typ: 'JWT',
      x5t: Buffer.from(sha1, 'hex').toString('base64url'),
    })
    await compactVerify(jwt, new X509Certificate(good.certPem).publicKey, { algorithms: ['RS256'] })
  })

  test('every assertion has its own jti', async () => {
    const [a, b] = await Promise.all([assertionOf('PS256'), assertionOf('PS256')])
    expect(decodeJwt(a).jti).not.toBe(decodeJwt(b).jti)
  })

  test.each([
    ['PS256', 'fromCertificateWithSha256Thumbprint', 'fingerprint256'],
    ['RS256', 'fromCertificate', 'fingerprint'],
  ] as const)('matches what MSAL Node builds offline (%s)', async (alg, factory, fingerprint) => {
    const hex = new X509Certificate(good.certPem)[fingerprint].replaceAll(':', '')
    const msal = ClientAssertion[factory](hex, good.keyPem).getJwt(
      new CryptoProvider(),
      CLIENT_ID,
      TOKEN_URL,
    )
    const ours = await assertionOf(alg)
    expect(decodeProtectedHeader(ours)).toEqual(decodeProtectedHeader(msal))
    const [m, o] = [decodeJwt(msal), decodeJwt(ours)]
    expect(Object.keys(o).sort()).toEqual(Object.keys(m).sort())
    expect({ aud: o.aud, iss: o.iss, sub: o.sub }).toEqual({ aud: m.aud, iss: m.iss, sub: m.sub })
    expect(o.exp! - o.nbf!).toBe(m.exp! - m.nbf!)
  })

  test('a certificate outside its dates when a token is asked for: refused before Entra is, a token wait as Entra’s refusals are', async () => {
    const cred = certificateCredential({
      certPem: good.certPem,
      keyPem: good.keyPem,
      algorithm: 'PS256',
      now: NOW,
    })
    const codeAt = (now: number) =>
      cred.authFields({ tokenUrl: TOKEN_URL, clientId: CLIENT_ID, now }).then(
        () => null,
        (e: unknown) => e as GraphAuthError,
      )
    const codes = [(await codeAt(NOW - 30 * DAY))?.code, (await codeAt(NOW + 3650 * DAY))?.code]
    expect(codes).toEqual(['certificate_not_yet_valid', 'certificate_expired'])
    // Its rows wait uncounted for a token, recorded once per run, logged at debug, renamed by a
    // pause, never taken for a mailbox's pause (outbox/settle-item.ts TOKEN_WAIT_CODE).
    for (const code of codes) expect(code).toMatch(new RegExp(TOKEN_WAIT_CODE))
  })
})

describe('loading the credential', () => {
  test('from PEM files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outbox-cred-'))
    await writeFile(join(dir, 'c.pem'), good.certPem)
    await writeFile(join(dir, 'k.pem'), good.keyPem)
    const cred = loadGraphCredential(
      config({ certificateFile: join(dir, 'c.pem'), privateKeyFile: join(dir, 'k.pem') }),
      NOW,
    )
    expect(cred.info).toMatchObject({ kind: 'certificate', algorithm: 'PS256' })
  })

  test('from PEM files saved with a byte order mark and Windows line ends, as Windows editors save them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outbox-cred-'))
    const windows = (pem: string) => `\ufeff${pem.replaceAll('\n', '\r\n')}`
    await writeFile(join(dir, 'c.pem'), windows(good.certPem))
    await writeFile(join(dir, 'k.pem'), windows(good.keyPem))
    await writeFile(join(dir, 'k-crlf.pem'), good.keyPem.replaceAll('\n', '\r\n'))
    expect(
      [join(dir, 'k.pem'), join(dir, 'k-crlf.pem')].map((keyFile) =>
        credentialProblems({ certificateFile: join(dir, 'c.pem'), privateKeyFile: keyFile }),
      ),
    ).toEqual([[], []])
  })

  test("from PEM files saved as UTF-16, as PowerShell 5's > and Out-File save them", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outbox-cred-'))
    // Their mark first, then each character in two bytes: little-endian (PowerShell), or big.
    const le = (pem: string) => Buffer.from(`\ufeff${pem.replaceAll('\n', '\r\n')}`, 'utf16le')
    const be = (pem: string) => le(pem).swap16()
    await writeFile(join(dir, 'c-le.pem'), le(good.certPem))
    await writeFile(join(dir, 'k-le.pem'), le(good.keyPem))
    await writeFile(join(dir, 'c-be.pem'), be(good.certPem))
    await writeFile(join(dir, 'k-be.pem'), be(good.keyPem))
    expect(
      ['le', 'be'].map((e) =>
        credentialProblems({
          certificateFile: join(dir, `c-${e}.pem`),
          privateKeyFile: join(dir, `k-${e}.pem`),
        }),
      ),
    ).toEqual([[], []])
    const cred = loadGraphCredential(
      config({ certificateFile: join(dir, 'c-le.pem'), privateKeyFile: join(dir, 'k-le.pem') }),
      NOW,
    )
    const plain = loadGraphCredential(
      config({ certificate: good.certPem, privateKey: good.keyPem }),
      NOW,
    )
    expect(cred.info).toEqual(plain.info)
  })

  test('from GRAPH_CERTIFICATE and GRAPH_PRIVATE_KEY holding such a file whole, its byte order mark first ("$(cat file)")', () => {
    // The mark leads the value: read as a blank around it, as every variable's blanks are.
    const bom = (pem: string) => `\ufeff${pem.replaceAll('\n', '\r\n')}`
    const loaded = loadConfig({
      DATABASE_URL: 'postgres://u@db/app',
      MAIL_FROM: 'notifications@example.com',
      GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
      GRAPH_CLIENT_ID: CLIENT_ID,
      GRAPH_CERTIFICATE: bom(good.certPem),
      GRAPH_PRIVATE_KEY: bom(good.keyPem),
    })
    const cred = loadGraphCredential(loaded.graph!, NOW)
    const plain = loadGraphCredential(
      config({ certificate: good.certPem, privateKey: good.keyPem }),
      NOW,
    )
    expect(cred.info).toEqual(plain.info)
  })

  test('GRAPH_CERTIFICATE holding two files so saved joined ("$(cat a.pem b.pem)"): the mark inside is named, where it is and how to drop it', () => {
    // The first file's mark leads the value (a blank, as read); the second's opens its line.
    const line = good.certPem.split('\n').length
    const problems = (() => {
      try {
        loadConfig({
          DATABASE_URL: 'postgres://u@db/app',
          MAIL_FROM: 'notifications@example.com',
          GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
          GRAPH_CLIENT_ID: CLIENT_ID,
          GRAPH_CERTIFICATE: `\ufeff${good.certPem}\ufeff${other.certPem}`,
          GRAPH_PRIVATE_KEY: `\ufeff${good.keyPem}`,
        })
        return []
      } catch (e) {
        return (e as AppError).details?.problems
      }
    })()
    expect(problems).toEqual([
      `GRAPH_CERTIFICATE: holds a byte order mark (U+FEFF, as a Windows editor saves "UTF-8 with BOM") at line ${line}: a file so saved was joined after another ("$(cat a.pem b.pem)"), its mark kept; save each file without it (sed -i 's/\\xEF\\xBB\\xBF//g' <file>) and set the value again`,
    ])
  })

  test('from one-line PEMs with literal \\n, as secret stores flatten them', () => {
    const flat = (s: string) => s.trim().replaceAll('\n', '\\n')
    const cred = loadGraphCredential(
      config({
        certificate: flat(good.certPem),
        privateKey: flat(good.keyPem),
        assertionAlgorithm: 'RS256',
      }),
      NOW,
    )
    expect(cred.info).toMatchObject({ kind: 'certificate', algorithm: 'RS256' })
  })

  test('a client secret is sent as client_secret', async () => {
    const cred = loadGraphCredential(config({ clientSecret: 's3cret' }), NOW)
    expect(await cred.authFields({ tokenUrl: TOKEN_URL, clientId: CLIENT_ID, now: NOW })).toEqual({
      client_secret: 's3cret',
    })
  })

  test('a key that does not belong to the certificate', () => {
    expectConfigError(
      () =>
        loadGraphCredential(config({ certificate: good.certPem, privateKey: other.keyPem }), NOW),
      /does not match/,
      other.keyPem,
    )
  })

  test('an expired certificate', () => {
    expectConfigError(
      () =>
        loadGraphCredential(
          config({ certificate: expired.certPem, privateKey: expired.keyPem }),
          NOW,
        ),
      /GRAPH_CERTIFICATE: expired at \d{4}-/,
    )
  })

  test('an RSA key under 2048 bits, which Entra and the signer refuse, is a start-up error', async () => {
    const short = await generateTestCertificate({ bits: 1024 })
    expectConfigError(
      () =>
        loadGraphCredential(config({ certificate: short.certPem, privateKey: short.keyPem }), NOW),
      /GRAPH_PRIVATE_KEY: .*1024 bits.*at least 2048/,
    )
  })

  test('a PKCS#1 key (BEGIN RSA PRIVATE KEY) works as it is, as the deploy guide says', async () => {
    const pkcs1 = createPrivateKey(good.keyPem).export({ type: 'pkcs1', format: 'pem' }).toString()
    expect(pkcs1).toMatch(/^-{5}BEGIN RSA PRIVATE KEY-{5}\n/)
    const cred = loadGraphCredential(config({ certificate: good.certPem, privateKey: pkcs1 }), NOW)
    const fields = await cred.authFields({ tokenUrl: TOKEN_URL, clientId: CLIENT_ID, now: NOW })
    const { payload } = await compactVerify(
      fields.client_assertion!,
      new X509Certificate(good.certPem).publicKey,
    )
    expect(JSON.parse(new TextDecoder().decode(payload)).iss).toBe(CLIENT_ID)
  })

  test('an encrypted key is named as encrypted, in either PEM form (PKCS#8, or PKCS#1 with Proc-Type)', () => {
    const key = createPrivateKey(good.keyPem)
    const encrypted = (type: 'pkcs1' | 'pkcs8') =>
      key.export({ type, format: 'pem', cipher: 'aes-256-cbc', passphrase: 'walk' }).toString()
    const pkcs1 = encrypted('pkcs1')
    expect(pkcs1).toContain('Proc-Type: 4,ENCRYPTED')
    for (const pem of [encrypted('pkcs8'), pkcs1]) {
      expectConfigError(
        () => loadGraphCredential(config({ certificate: good.certPem, privateKey: pem }), NOW),
        /GRAPH_PRIVATE_KEY: is encrypted/,
        pem,
      )
    }
  })

  test('a certificate not valid yet', () => {
    expectConfigError(
      () =>
        loadGraphCredential(
          config({ certificate: future.certPem, privateKey: future.keyPem }),
          NOW,
        ),
      /not valid before/,
    )
  })

  test('garbage instead of a certificate', () => {
    expectConfigError(
      () => loadGraphCredential(config({ certificate: 'hello', privateKey: good.keyPem }), NOW),
      /GRAPH_CERTIFICATE: is not a PEM certificate/,
    )
  })

  test('a file path where the PEM goes, and the pair swapped, each say what to set instead', () => {
    for (const [cfg, expected] of [
      [
        { certificate: '/run/secrets/outbox.crt', privateKey: './outbox-mailer-202612.key' },
        [
          'GRAPH_CERTIFICATE: holds a file path, not the PEM: set GRAPH_CERTIFICATE_FILE to the path, or GRAPH_CERTIFICATE to the file\'s contents ("$(cat <file>)")',
          'GRAPH_PRIVATE_KEY: holds a file path, not the PEM: set GRAPH_PRIVATE_KEY_FILE to the path, or GRAPH_PRIVATE_KEY to the file\'s contents ("$(cat <file>)")',
        ],
      ],
      [
        { certificate: good.keyPem, privateKey: good.certPem },
        [
          'GRAPH_CERTIFICATE: holds a private key, not a certificate (GRAPH_CERTIFICATE and GRAPH_PRIVATE_KEY swapped?)',
          'GRAPH_PRIVATE_KEY: holds a certificate, not a private key (GRAPH_CERTIFICATE and GRAPH_PRIVATE_KEY swapped?)',
        ],
      ],
    ] as const) {
      let problems: unknown
      try {
        loadGraphCredential(config(cfg), NOW)
      } catch (e) {
        problems = (e as AppError).details?.problems
      }
      expect(problems).toEqual(expected)
    }
  })

  test('a PEM of another kind (an EC or OpenSSH key, a public key, a signing request) is named for what it is, not as "no BEGIN PRIVATE KEY block"', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const sec1 = ec.privateKey.export({ type: 'sec1', format: 'pem' }).toString()
    const publicKey = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const rsaPublic = createPublicKey(good.keyPem).export({ type: 'pkcs1', format: 'pem' })
    const pem = (label: string) => `-----BEGIN ${label}-----\nAAAA\n-----END ${label}-----\n`
    const key = (privateKey: string) =>
      credentialProblems({ certificate: good.certPem, privateKey })
    const cert = (certificate: string) =>
      credentialProblems({ certificate, privateKey: good.keyPem })
    expect([
      key(sec1),
      key(pem('OPENSSH PRIVATE KEY')),
      key(publicKey),
      key(rsaPublic.toString()),
      cert(publicKey),
      cert(pem('CERTIFICATE REQUEST')),
      cert(sec1),
    ]).toEqual([
      ['GRAPH_PRIVATE_KEY: must be an RSA key (PS256/RS256), got ec (BEGIN EC PRIVATE KEY)'],
      [
        'GRAPH_PRIVATE_KEY: is in OpenSSH’s format (BEGIN OPENSSH PRIVATE KEY), not PEM: convert a copy with `ssh-keygen -p -m PKCS8 -f <copy>` (the RSA key the certificate was made with)',
      ],
      [
        'GRAPH_PRIVATE_KEY: holds a public key (BEGIN PUBLIC KEY), not the private key: set it to the private key the certificate was made with (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)',
      ],
      [
        'GRAPH_PRIVATE_KEY: holds a public key (BEGIN RSA PUBLIC KEY), not the private key: set it to the private key the certificate was made with (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)',
      ],
      [
        'GRAPH_CERTIFICATE: holds a public key (BEGIN PUBLIC KEY), not the certificate: set it to the certificate uploaded to the app registration (BEGIN CERTIFICATE)',
      ],
      [
        'GRAPH_CERTIFICATE: holds a certificate signing request (BEGIN CERTIFICATE REQUEST), not the certificate: set it to the certificate issued for it (BEGIN CERTIFICATE)',
      ],
      [
        'GRAPH_CERTIFICATE: holds a private key, not a certificate (GRAPH_CERTIFICATE and GRAPH_PRIVATE_KEY swapped?)',
      ],
    ])
    // No key's text is echoed.
    expect(JSON.stringify([key(sec1), cert(sec1)])).not.toContain(sec1.split('\n')[1]!.slice(0, 40))
  })

  test('the certificate’s thumbprint where the certificate goes (as openssl prints it, or as the portal shows it) says to set the .crt file’s contents', () => {
    const sha1 = new X509Certificate(good.certPem).fingerprint
    for (const thumbprint of [sha1, sha1.toLowerCase(), sha1.replaceAll(':', '')]) {
      let problems: unknown
      try {
        loadGraphCredential(config({ certificate: thumbprint, privateKey: good.keyPem }), NOW)
      } catch (e) {
        problems = (e as AppError).details?.problems
      }
      expect(problems).toEqual([
        'GRAPH_CERTIFICATE: holds a certificate thumbprint, not the certificate: set it to the .crt file\'s contents (GRAPH_CERTIFICATE="$(cat <file>.crt)"); the thumbprint is computed from it (check-config prints it as the portal shows it)',
      ])
    }
  })

  test('a garbled certificate body', () => {
    const garbled = '-----BEGIN CERTIFICATE-----\nAAAAnotreallyacert\n-----END CERTIFICATE-----\n'
    expectConfigError(
      () => loadGraphCredential(config({ certificate: garbled, privateKey: good.keyPem }), NOW),
      /cannot be parsed/,
    )
  })

  test('a garbled key never echoes the key', () => {
    const garbled = good.keyPem.replace(/^(-----BEGIN [A-Z ]+-----\n.{10})/, '$1!!!')
    expectConfigError(
      () => loadGraphCredential(config({ certificate: good.certPem, privateKey: garbled }), NOW),
      /GRAPH_PRIVATE_KEY: the PEM private key cannot be parsed/,
      garbled,
    )
  })

  test('every problem of the pair is named at once, not the first only', () => {
    const garbledKey = good.keyPem.replace(/^(-----BEGIN [A-Z ]+-----\n.{10})/, '$1!!!')
    for (const [cfg, expected] of [
      [
        { certificateFile: '/nonexistent/cert.pem', privateKey: 'garbage' },
        [
          'GRAPH_CERTIFICATE_FILE: cannot be read (ENOENT): set it to the path of the PEM file',
          'GRAPH_PRIVATE_KEY: is not a PEM private key (no BEGIN PRIVATE KEY block)',
        ],
      ],
      [
        { certificate: expired.certPem, privateKey: garbledKey },
        [
          'GRAPH_PRIVATE_KEY: the PEM private key cannot be parsed',
          expect.stringMatching(/^GRAPH_CERTIFICATE: expired at \d{4}-/),
        ],
      ],
      [
        { certificate: expired.certPem, privateKey: other.keyPem },
        [
          'GRAPH_PRIVATE_KEY: does not match the public key of GRAPH_CERTIFICATE',
          expect.stringMatching(/^GRAPH_CERTIFICATE: expired at /),
        ],
      ],
    ] as const) {
      let problems: unknown
      try {
        loadGraphCredential(config(cfg), NOW)
      } catch (e) {
        problems = (e as AppError).details?.problems
      }
      expect(problems).toEqual(expected)
    }
  })

  test('a file variable naming a device, a FIFO or a huge file is refused before it is read, not read forever or whole', async () => {
    // readFileSync read a character device to its end: /dev/null as an empty key, /dev/zero until
    // the memory ran out (the binary: ENOMEM after 4 GB under ulimit, 2 s; killed without one),
    // a FIFO or /dev/stdin until a writer came, and a log file named by mistake whole.
    const dir = await mkdtemp(join(tmpdir(), 'outbox-pem-'))
    const big = join(dir, 'big.pem')
    await writeFile(big, `${good.certPem}\n${'#'.repeat(2 * 1024 * 1024)}`)
    const fifo = join(dir, 'key.fifo')
    expect(Bun.spawnSync(['mkfifo', fifo]).exitCode).toBe(0)
    expect([
      credentialProblems({ certificate: good.certPem, privateKeyFile: '/dev/null' }),
      credentialProblems({ certificate: good.certPem, privateKeyFile: '/dev/zero' }),
      credentialProblems({ certificate: good.certPem, privateKeyFile: fifo }),
      credentialProblems({ certificateFile: big, privateKey: good.keyPem }),
    ]).toEqual([
      [
        'GRAPH_PRIVATE_KEY_FILE: is not a regular file (a character device): set it to the path of the PEM file',
      ],
      [
        'GRAPH_PRIVATE_KEY_FILE: is not a regular file (a character device): set it to the path of the PEM file',
      ],
      [
        'GRAPH_PRIVATE_KEY_FILE: is not a regular file (a FIFO): set it to the path of the PEM file',
      ],
      [
        `GRAPH_CERTIFICATE_FILE: is ${2 * 1024 * 1024 + good.certPem.length + 1} bytes, more than a PEM file holds (at most 1 MiB): set it to the path of the PEM file`,
      ],
    ])
  })

  test('an unreadable key file names the variable, not the file contents', () => {
    expectConfigError(
      () =>
        loadGraphCredential(
          config({ certificate: good.certPem, privateKeyFile: '/nonexistent/key.pem' }),
          NOW,
        ),
      /GRAPH_PRIVATE_KEY_FILE: cannot be read \(ENOENT\)/,
    )
  })
})
