// Hostile values for the environment's variables (fast-check arbitraries): blanks, NUL, huge, unicode digits, odd numbers and units, broken URLs and PEMs.
import fc from 'fast-check'

/** Blanks a value may be padded with: ASCII's, the no-break and ideographic spaces, a BOM, a zero-width space. */
export const BLANKS = [' ', '\t', '\n', '\r\n', '\u00a0', '\u3000', '\ufeff', '\u200b'] as const

/** Characters no one sees: a zero-width space, joiners, marks, a soft hyphen, control characters. */
export const UNSEEN = [
  '\u200b',
  '\u200d',
  '\u2060',
  '\u200e',
  '\u00ad',
  '\u001b',
  '\u0007',
  '\u007f',
] as const

// Digits of other scripts: a value of them is no number the parser reads as one.
const DIGITS: Record<string, string> = {
  arabic: '٠١٢٣٤٥٦٧٨٩',
  fullwidth: '０１２３４５６７８９',
  devanagari: '०१२३४५६७८९',
}

/** Values every variable is fed, whatever it takes. */
const FIXED = [
  '',
  ' ',
  '\t\n',
  '\0',
  'a\0b',
  '5\0',
  '"quoted"',
  "'quoted'",
  'null',
  'undefined',
  '[]',
  '{}',
  '[{}]',
  'true',
  'TRUE',
  'yes',
  'on',
  'off',
  '-',
  '=',
  '\\n',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell's variable an env file keeps as written
  '${HOME}',
  '$(cat /etc/passwd)',
  'é',
  '\u{1F600}',
  '\ud800',
  'a,b',
  'localhost:80',
  '::',
  '[::1]',
  '0.0.0.0',
  'Name <a@b.c>',
  '@',
  'common',
] as const

const numberLike = fc.oneof(
  fc.integer({ min: -1_000_000, max: 10_000_000 }).map(String),
  fc.constantFrom('-0', '+5', '00010', '0x10', '1_000', '1,000', '1 000', 'NaN', 'Infinity'),
  fc.constantFrom('1e3', '1e999', '-1e999', '1.5', '.5', '5.', '9'.repeat(30), '2147483648'),
  fc.double({ noNaN: true }).map(String),
  fc
    .tuple(
      fc.integer({ min: 0, max: 100_000 }),
      fc.constantFrom('s', 'ms', 'm', 'h', 'd', 'sec', ' seconds', 'min'),
    )
    .map(([n, unit]) => `${n}${unit}`),
  fc
    .tuple(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(...Object.values(DIGITS)))
    .map(([n, digits]) => String(n).replace(/\d/g, (d) => digits[Number(d)]!)),
)

/**
 * A postgres URL with something wrong or odd in it; its password, if any, holds `marker`; its
 * sslrootcert, sslcert or sslkey may name one of `pemFiles` (made by the caller at test time).
 */
export const oddDatabaseUrl = (marker: string, pemFiles: readonly string[] = []) =>
  fc.oneof(
    ...(pemFiles.length === 0
      ? []
      : [
          fc
            .tuple(
              fc.constantFrom('sslrootcert', 'sslcert', 'sslkey'),
              fc.constantFrom(...pemFiles),
            )
            .map(
              ([key, path]) =>
                `postgres://u:${marker}@db.example/app?sslmode=verify-full&${key}=${path}`,
            ),
        ]),
    fc.constantFrom(
      'postgres://',
      'postgres:///',
      'postgresql://@/',
      `postgres://u:${marker}%@db/app`,
      `postgres://u:${marker}%zz@db/app`,
      `postgres://u:${marker}%E0%A4%A@db/app`,
      `postgres://u:${marker}%00@db/app`,
      `postgres://u%zz:${marker}@db/app`,
      `postgres://u:${marker}@db/app%zz`,
      `postgres://u:${marker}@db/%00`,
      `postgres://u:${marker}@db:99999/app`,
      `postgres://u:${marker}@db:-1/app`,
      `postgres://u:${marker}@db:0/app`,
      `postgres://u:${marker}@db:abc/app`,
      `postgres://u:${marker}@[::1/app`,
      `postgres://u:${marker}@db/app?port=abc`,
      `postgres://u:${marker}@db/app?port=70000`,
      `postgres://u:${marker}@db:5432/app?port=6543`,
      `postgres://u:${marker}@db/app?sslmode=verify-full&sslmode=disable`,
      `postgres://u:${marker}@db/app?sslmode=disabled`,
      `postgres://u:${marker}@db/app?sslmode=`,
      `postgres://u:${marker}@db/app?sslmode=allow`,
      `postgres://u:${marker}@db/app?password=other`,
      `postgres://u:${marker}@db/app?host=`,
      `postgres://u:${marker}@db/app?application_name=%zz`,
      `postgres://u:pa#${marker}@db/app`,
      `postgres://u:${marker}@db/app?sslrootcert=/nonexistent`,
      `postgres://u:${marker}@db/app?sslrootcert=/dev/zero`,
      `postgres://u:${marker}@db/app?sslkey=/tmp`,
      `mysql://u:${marker}@db/app`,
      `https://u:${marker}@db/app`,
      `POSTGRES://u:${marker}@db/app`,
    ),
    fc
      .tuple(
        fc.constantFrom(
          '%',
          '%2',
          '%4',
          '%zz',
          '%FF',
          '%C3%28',
          '%c3%a9',
          '%25',
          '%40',
          '%2F',
          '%23',
          '@',
          ':',
          '/',
          '?',
          ' ',
          '\0',
        ),
        fc.nat({ max: 30 }),
      )
      .map(([bit, at]) => {
        const url = `postgres://u:${marker}@db.example:5432/app?sslmode=verify-full`
        const i = Math.min(at, url.length)
        return `${url.slice(0, i)}${bit}${url.slice(i)}`
      }),
  )

/** Entra ids of every wrong form, and right ones in forms a check might refuse (capitals, a domain). */
const oddEntraId = fc.oneof(
  fc.constantFrom(
    'contoso',
    'contoso.',
    'contoso.onmicrosoft.com',
    'CONTOSO.COM',
    'xn--mnchen-3ya.de',
    'münchen.de',
    'admin@contoso.onmicrosoft.com',
    '10.0.0.1',
    '00000000-0000-0000-0000-000000000000',
    'organizations',
    'api://outbox',
    'outbox-mailer',
  ),
  fc
    .tuple(
      fc.uuid(),
      fc.constantFrom('upper', 'braces', 'parens', 'undashed', 'short', 'long', 'g'),
    )
    .map(([id, form]) => {
      if (form === 'upper') return id.toUpperCase()
      if (form === 'braces') return `{${id}}`
      if (form === 'parens') return `(${id})`
      if (form === 'undashed') return id.replaceAll('-', '')
      if (form === 'short') return id.slice(1)
      if (form === 'long') return `${id}0`
      return `${id.slice(0, -1)}g`
    }),
)

const oddHttpUrl = fc.constantFrom(
  'https://',
  'http://',
  'https://login.microsoftonline.com/',
  'https://login.microsoftonline.com/contoso.onmicrosoft.com',
  'https://login.microsoftonline.com?x=1',
  'https://graph.microsoft.com',
  'https://graph.microsoft.com/v1.0?x',
  'https://graph.microsoft.com/v2.0',
  'https://graph.microsoft.us/v1.0',
  'ftp://graph.microsoft.com/v1.0',
  'https:/graph.microsoft.com/v1.0',
  'https://%zz/v1.0',
  'https://[::1/v1.0',
  'graph.microsoft.com/v1.0',
  // Written in two parts: the secret scan takes a user and password in a URL for a credential.
  `https://user:${'pass'}@graph.microsoft.com/v1.0`,
)

/** PEM blocks of every kind but the right one (made by the caller at test time: no key enters the repo). */
export interface OddPems {
  ecKey: string
  ecKeyPkcs8: string
  publicKey: string
  shortRsaKey: string
  certificate: string
  otherKey: string
}

// A PEM boundary's dashes, built: no PEM header is written out in a tracked file (the secret scans).
const DASHES = '-'.repeat(5)

const oddPem = (pems: OddPems) =>
  fc.oneof(
    fc.constantFrom(...Object.values(pems)),
    fc
      .constantFrom(
        'CERTIFICATE REQUEST',
        'OPENSSH PRIVATE KEY',
        'DSA PRIVATE KEY',
        'ENCRYPTED PRIVATE KEY',
        'PRIVATE KEY',
        'CERTIFICATE',
        'X509 CRL',
      )
      .map((label) => `${DASHES}BEGIN ${label}${DASHES}\nAAAA\n${DASHES}END ${label}${DASHES}\n`),
    fc.constantFrom(
      'AB'.repeat(20),
      `${'ab:'.repeat(31)}ab`,
      '/run/secrets/key.pem',
      './cert.crt',
      `${DASHES}BEGIN PRIVATE KEY${DASHES}`,
    ),
  )

const huge = fc
  .tuple(
    fc.constantFrom('x', '9', '[', '%', '\u3000', 'é'),
    fc.integer({ min: 1_000, max: 100_000 }),
  )
  .map(([c, n]) => c.repeat(n))

/**
 * Any hostile value: for `name`, kinds that variable takes are fed more often. `pemFiles`: paths
 * of PEM files oddly saved (a byte order mark, UTF-16, Windows line ends), for the variables and
 * URL parameters that name one.
 */
export function hostileValue(
  name: string,
  marker: string,
  pems: OddPems,
  pemFiles: readonly string[] = [],
): fc.Arbitrary<string> {
  const own = /URL$/.test(name)
    ? name.includes('DATABASE')
      ? oddDatabaseUrl(marker, pemFiles)
      : oddHttpUrl
    : /CERTIFICATE$|PRIVATE_KEY$/.test(name)
      ? oddPem(pems)
      : /_FILE$/.test(name) && pemFiles.length > 0
        ? fc.constantFrom(...pemFiles)
        : /^GRAPH_(TENANT|CLIENT)_ID$/.test(name)
          ? oddEntraId
          : numberLike
  const core = fc.oneof(
    { weight: 3, arbitrary: own },
    { weight: 2, arbitrary: fc.constantFrom(...FIXED) },
    { weight: 1, arbitrary: numberLike },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 1, arbitrary: huge },
  )
  // Padded with blanks on either side, or not; sometimes a character no one sees inside.
  return fc
    .tuple(
      fc.array(fc.constantFrom(...BLANKS), { maxLength: 2 }),
      core,
      fc.option(fc.tuple(fc.constantFrom(...UNSEEN), fc.nat()), { freq: 4 }),
      fc.array(fc.constantFrom(...BLANKS), { maxLength: 2 }),
    )
    .map(([a, v, unseen, b]) => {
      if (!unseen) return `${a.join('')}${v}${b.join('')}`
      const [c, at] = unseen
      const i = at % (v.length + 1)
      return `${a.join('')}${v.slice(0, i)}${c}${v.slice(i)}${b.join('')}`
    })
}
