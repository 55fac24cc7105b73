// migrate (Fly's release command) against a database that accepts the connection and never answers: it fails naming it, and the databases after it are migrated.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { migrateEvery } from '../../src/db/migrate-every.ts'
import { migrations } from '../../src/db/migrations.ts'
import { EXIT } from '../../src/errors.ts'
import { silentLogger } from '../../src/log.ts'
import { type SilencingProxy, startSilencingProxy } from '../support/silencing-proxy.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). The race below
// outlasts the connect's 10 s bound and the other database's migrate on a loaded machine.
setDefaultTimeout(90_000)

const NO_ANSWER =
  'no answer from the server: the connection was given up after 10 s (a server down behind a proxy or pooler, a route that drops the packets): check the host and port in the URL and that the server is up'

let shop: TemplateDb
let away: TemplateDb
let proxy: SilencingProxy
beforeAll(async () => {
  ;[shop, away] = await Promise.all([
    cloneTemplateDb('outbox_migshop'),
    cloneTemplateDb('outbox_migaway'),
  ])
  // A route that answers nothing (a proxy or pooler whose server is gone, packets dropped):
  // connections are accepted, and not a byte comes back.
  proxy = await startSilencingProxy(away.url)
  proxy.blackhole()
})
afterAll(async () => {
  proxy?.close()
  await Promise.all([shop?.drop(), away?.drop()])
})

test('a database that never answers fails with its name and why, and the next one is migrated', async () => {
  const out: string[] = []
  const err: string[] = []
  const config = loadConfig(
    {
      MAILER_DATABASES: JSON.stringify([
        { name: 'away', url: proxy.url },
        { name: 'shop', url: shop.url },
      ]),
    },
    { role: 'api' },
  )
  // Without a bound of its own it waited for ever: Fly's release command ran into its 5-minute
  // timeout with no line saying why, and `shop`, behind it, was never migrated. Raced here so the
  // test names that instead of timing out.
  const hung = Symbol('still waiting')
  let timer: ReturnType<typeof setTimeout> | undefined
  const exit = await Promise.race([
    migrateEvery(config, silentLogger, {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
    }),
    new Promise<typeof hung>((resolve) => {
      timer = setTimeout(() => resolve(hung), 60_000)
    }),
  ])
  clearTimeout(timer)
  expect({ exit, out, err }).toEqual({
    exit: EXIT.failure,
    out: [`shop: up to date (schema version ${migrations.at(-1)!.version})`],
    err: [
      `away (MAILER_DATABASES away.url): ${NO_ANSWER}`,
      'migrate: 1 of 2 databases failed (away); the others are migrated',
    ],
  })
})
