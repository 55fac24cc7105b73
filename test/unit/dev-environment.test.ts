// `bun run dev` drains its embedded database only, whatever database settings the shell holds.
import { expect, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { devEnvironment } from '../../src/dev-environment.ts'

const places = {
  url: 'postgres://postgres:postgres@127.0.0.1:54329/outbox_dev',
  mailDir: '/tmp/m',
  port: 8080,
}

test('the shell’s LISTEN_DATABASE_URL is not listened on: dev listens on its embedded database', () => {
  const config = loadConfig(
    devEnvironment({ LISTEN_DATABASE_URL: 'postgres://app:pw@db.example.com:5432/prod' }, places),
    { dev: true },
  )
  expect(config.databases.map((d) => [d.url, d.listenUrl])).toEqual([[places.url, places.url]])
})

test('the shell’s MAILER_DATABASES neither fails dev nor is drained by it', () => {
  const several = JSON.stringify([
    { name: 'shop', url: 'postgres://app:pw@db.example.com:5432/shop' },
  ])
  const config = loadConfig(devEnvironment({ MAILER_DATABASES: several }, places), { dev: true })
  expect(config.databases.map((d) => d.url)).toEqual([places.url])
  expect(config.transport).toBe('file')
})
