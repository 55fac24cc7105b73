// The file transport under MAILER_DATABASES: rows of two databases that share an id each keep their .eml.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let shop: TestDb
let crm: TestDb
let dir: string

beforeAll(async () => {
  ;[shop, crm] = await Promise.all([createTestDb(), createTestDb()])
  dir = await mkdtemp(join(tmpdir(), 'outbox-file-dbs-'))
})
afterAll(async () => {
  await Promise.all([shop.drop(), crm.drop()])
  await rm(dir, { recursive: true, force: true })
})

/** Every .eml under `dir`, any depth, by its path relative to `dir`. */
async function emlFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  for (const entry of await readdir(dir, { recursive: true })) {
    if (entry.endsWith('.eml')) files.set(entry, await readFile(join(dir, entry), 'utf8'))
  }
  return files
}

test('two databases sending rows with the same id write two .eml files, one per database', async () => {
  const config = loadConfig({
    MAILER_DATABASES: JSON.stringify([
      { name: 'shop', url: shop.url },
      { name: 'crm', url: crm.url },
    ]),
    MAIL_TRANSPORT: 'file',
    MAIL_FILE_DIR: dir,
    MAIL_FROM: 'outbox@example.com',
    HOST: '127.0.0.1',
    PORT: '0',
  })
  // Fresh databases: both rows get id 1.
  const fromShop = await enqueue(shop, { to: 'a@example.com', subject: 'from shop', text: 's' })
  const fromCrm = await enqueue(crm, { to: 'b@example.com', subject: 'from crm', text: 'c' })
  expect(fromShop).toBe(fromCrm)
  const running = await serve(config, { role: 'worker', log: silentLogger })
  try {
    await pollUntil(async () => {
      const [s, c] = await Promise.all([rowOf(shop, fromShop), rowOf(crm, fromCrm)])
      return s.status === 'sent' && c.status === 'sent' ? true : undefined
    })
  } finally {
    await running.stop('test')
  }
  const files = await emlFiles()
  const subjects = [...files.values()].map((eml) => /^Subject: (.*)$/m.exec(eml)?.[1]).sort()
  expect(subjects).toEqual(['from crm', 'from shop'])
  // Each database's messages in a directory of its own, named as with one database.
  expect([...files.keys()].sort()).toEqual([
    join('crm', `outbox-${fromCrm}.eml`),
    join('shop', `outbox-${fromShop}.eml`),
  ])
})
