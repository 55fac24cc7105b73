// A database URL's sslrootcert, sslcert or sslkey file saved with a byte order mark or as UTF-16 (Windows editors, PowerShell) is refused at start saying how to save it, not met as a TLS failure at every connection.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'
import { generateTestCertificate, type TestCertificate } from '../support/test-certificate.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). The test
// certificate is an RSA key made by openssl: a second or more of CPU on a loaded machine.
setDefaultTimeout(30_000)

const BOM = '\ufeff'
let cert: TestCertificate
let dir: string
const file = (name: string) => join(dir, name)

beforeAll(async () => {
  cert = await generateTestCertificate({ commonName: 'db.internal' })
  dir = mkdtempSync(join(tmpdir(), 'outbox-sslrootcert-'))
  writeFileSync(file('ca.pem'), cert.certPem)
  writeFileSync(file('ca-crlf.pem'), cert.certPem.replaceAll('\n', '\r\n'))
  writeFileSync(file('ca-bom.pem'), `${BOM}${cert.certPem.replaceAll('\n', '\r\n')}`)
  // Two files each saved with its mark, joined: the second's opens line N.
  writeFileSync(file('bundle-bom.pem'), `${cert.certPem}${BOM}${cert.certPem}`)
  writeFileSync(file('ca-utf16.pem'), Buffer.from(`${BOM}${cert.certPem}`, 'utf16le'))
  writeFileSync(file('key-bom.pem'), `${BOM}${cert.keyPem}`)
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

function problems(url: string): string[] {
  try {
    loadConfig({ MAIL_TRANSPORT: 'file', DATABASE_URL: url })
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}
const url = (query: string) => `postgres://u:p@db.internal/app?sslmode=verify-full&${query}`
const marked = (key: string, where: string) =>
  `DATABASE_URL: its ${key} file holds a byte order mark (U+FEFF, as a Windows editor saves "UTF-8 with BOM") ${where}: the driver's TLS skips the PEM block it opens, and every connection would fail; save the file without it (sed -i 's/\\xEF\\xBB\\xBF//g' <file>) (deploy guide, step 4)`

describe("a database URL's PEM file saved with a byte order mark", () => {
  test("the driver's TLS reads a CA file opening with the mark as no certificate: the server's is refused", async () => {
    // Why it is refused at start: the driver hands the file's text to TLS as `ca`, as here.
    const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (s) => s.end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    const handshake = (ca: string) =>
      new Promise<string>((resolve) => {
        const s = tls.connect(
          { host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined },
          () => {
            s.destroy()
            resolve('trusted')
          },
        )
        s.on('error', (e: { code?: string }) => resolve(e.code ?? 'error'))
      })
    try {
      // Read as pg-connection-string reads it (a Buffer's toString keeps the mark; a TextDecoder,
      // Bun.file().text() too, would drop it).
      const read = (name: string) => readFileSync(file(name)).toString()
      expect(await handshake(read('ca.pem'))).toBe('trusted')
      expect(await handshake(read('ca-bom.pem'))).not.toBe('trusted')
    } finally {
      server.close()
    }
  })

  test('refused at start naming the parameter, where the mark is and how to drop it; UTF-16 named as such', () => {
    expect(problems(url(`sslrootcert=${file('ca-bom.pem')}`))).toEqual([
      marked('sslrootcert', 'at its start'),
    ])
    const line = cert.certPem.split('\n').length
    expect(problems(url(`sslrootcert=${file('bundle-bom.pem')}`))).toEqual([
      marked('sslrootcert', `at line ${line}`),
    ])
    expect(problems(url(`sslcert=${file('ca-bom.pem')}&sslkey=${file('key-bom.pem')}`))).toEqual([
      marked('sslcert', 'at its start'),
    ])
    expect(problems(url(`sslrootcert=${file('ca-utf16.pem')}`))).toEqual([
      `DATABASE_URL: its sslrootcert file is UTF-16 text (as PowerShell 5's > and Out-File save it), in which the driver's TLS finds no PEM block: save it as ASCII or UTF-8 (Out-File -Encoding ascii, or iconv -f UTF-16 -t UTF-8 <file> > <file>.utf8 && mv <file>.utf8 <file>) (deploy guide, step 4)`,
    ])
  })

  test("each line's own command, run on the file, leaves one the start takes", () => {
    for (const name of ['ca-bom.pem', 'bundle-bom.pem', 'ca-utf16.pem']) {
      const path = file(`fixed-${name}`)
      writeFileSync(path, readFileSync(file(name)))
      const [line] = problems(url(`sslrootcert=${path}`))
      // The command the line gives in parentheses, for the shell, <file> being this file's path.
      const command = /\((?:[^()]*, or )?((?:sed|iconv) [^()]*)\)/.exec(line!)?.[1]
      expect([name, command]).toEqual([name, expect.stringContaining('<file>')])
      const run = Bun.spawnSync(['sh', '-c', command!.replaceAll('<file>', path)])
      expect([name, run.exitCode, problems(url(`sslrootcert=${path}`))]).toEqual([name, 0, []])
    }
  })

  test('check-config names it as the start does', async () => {
    const report = await checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        API_JWT_SECRET: randomBytes(32).toString('base64url'),
        DATABASE_URL: url(`sslrootcert=${file('ca-bom.pem')}`),
      },
      { connect: false, role: 'api' },
    )
    expect(report.problems).toEqual([marked('sslrootcert', 'at its start')])
  })

  test('a file without the mark is taken, with Windows line ends too', () => {
    expect(problems(url(`sslrootcert=${file('ca.pem')}`))).toEqual([])
    expect(problems(url(`sslrootcert=${file('ca-crlf.pem')}`))).toEqual([])
  })
})
