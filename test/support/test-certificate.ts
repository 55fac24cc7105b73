// Test-time RSA keys and self-signed certificates (any validity window), made by openssl: no secret enters the repo.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCertificate {
  certPem: string
  keyPem: string
}

const DAY = 86_400_000

// `openssl req -x509` on OpenSSL 3.0 cannot set a start date; `openssl ca -selfsign` can.
const CA_CONFIG = `[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
`

export async function generateTestCertificate(
  opts: { notBefore?: Date; notAfter?: Date; commonName?: string; bits?: number } = {},
): Promise<TestCertificate> {
  const notBefore = opts.notBefore ?? new Date(Date.now() - DAY)
  const notAfter = opts.notAfter ?? new Date(Date.now() + 30 * DAY)
  const dir = await mkdtemp(join(tmpdir(), 'outbox-cert-'))
  try {
    await writeFile(join(dir, 'ca.cnf'), CA_CONFIG)
    await writeFile(join(dir, 'index.txt'), '')
    await writeFile(join(dir, 'serial'), '01\n')
    await openssl(dir, [
      'genpkey',
      '-algorithm',
      'RSA',
      '-pkeyopt',
      `rsa_keygen_bits:${opts.bits ?? 2048}`,
      '-out',
      'key.pem',
    ])
    await openssl(dir, [
      'req',
      '-new',
      '-key',
      'key.pem',
      '-subj',
      `/CN=${opts.commonName ?? 'outbox-mailer-test'}`,
      '-out',
      'req.csr',
    ])
    await openssl(dir, [
      'ca',
      '-selfsign',
      '-batch',
      '-notext',
      '-config',
      'ca.cnf',
      '-keyfile',
      'key.pem',
      '-in',
      'req.csr',
      '-startdate',
      asn1Time(notBefore),
      '-enddate',
      asn1Time(notAfter),
      '-out',
      'cert.pem',
    ])
    return {
      certPem: await Bun.file(join(dir, 'cert.pem')).text(),
      keyPem: await Bun.file(join(dir, 'key.pem')).text(),
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const proc = Bun.spawn(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe' })
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
  if (code !== 0) throw new Error(`openssl ${args[0]} failed (${code}): ${stderr}`)
}

function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`
}
