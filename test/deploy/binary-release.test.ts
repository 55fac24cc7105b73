// The compiled binary does what fly.toml relies on: release_command migrates over the direct URL,
// the checked and scraped paths answer, and SIGTERM ends it well within kill_timeout.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { testCluster } from '../preload.ts'
import { BUILD_HOOK_TIMEOUT_MS, compiledBinary, runBinary } from '../support/binary.ts'
import { closedPort } from '../support/closed-port.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPorts } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import {
  durationSeconds,
  type FlyConfig,
  flyEnv,
  imageEnv,
  metricsList,
  readFlyConfig,
} from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const fly: FlyConfig = await readFlyConfig()
const image = await imageEnv()

let bin: string
let db: TestDb
const freshDb = `outbox_release_${process.pid}`

// Builds the binary and, in a run's first file (as in CI), starts the run's cluster: side by side.
beforeAll(async () => {
  ;[bin, db] = await Promise.all([compiledBinary(), createTestDb()])
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `create database ${freshDb}`)
}, BUILD_HOOK_TIMEOUT_MS)
afterAll(async () => {
  await db?.drop()
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `drop database if exists ${freshDb} with (force)`)
})

/** The image's ENV, fly.toml's [env] and what `fly secrets set` adds in the runbook, generated per run. */
function releaseEnv(extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...image,
    GRAPH_TENANT_ID: randomUUID(),
    GRAPH_CLIENT_ID: randomUUID(),
    MAIL_FROM: 'notifications@example.com',
    GRAPH_CLIENT_SECRET: randomBytes(24).toString('base64url'),
    API_JWT_SECRET: randomBytes(32).toString('base64url'),
    ...flyEnv(fly),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...extra,
  }
}

test('the pinned Bun’s allocator takes the settings the image gives it', async () => {
  // A Bun upgrade that renamed or dropped a mimalloc option would silently undo the tuning.
  const p = Bun.spawn([bin, '--version'], {
    env: { PATH: process.env.PATH ?? '', ...image, MIMALLOC_VERBOSE: '1' },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()])
  expect(code).toBe(0)
  const allocator = Object.entries(image).filter(([name]) => name.startsWith('MIMALLOC_'))
  expect(allocator.length).toBeGreaterThan(0)
  for (const [name, value] of allocator) {
    const option = name.slice('MIMALLOC_'.length).toLowerCase()
    expect(stderr).toContain(`option '${option}': ${value} `)
  }
})

test('release_command migrates through LISTEN_DATABASE_URL even when the pooled URL is unreachable', async () => {
  const cluster = await testCluster()
  const closed = await closedPort()
  const argv = fly.deploy!.release_command!.split(/\s+/)
  const { code, stdout, stderr } = await runBinary(
    bin,
    argv,
    releaseEnv({
      DATABASE_URL: `postgres://127.0.0.1:${closed}/pooled`,
      LISTEN_DATABASE_URL: cluster.url(freshDb),
    }),
  )
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
  expect(stdout).toContain('applied 1')
})

test('the checked and scraped paths answer, and SIGTERM exits 0 well within kill_timeout', async () => {
  // fly.toml's METRICS_PORT (9091) and PORT moved to ports the system chooses (0), read back from
  // the "http listening" line (at info): tests run side by side, and a port picked here and given
  // back could be another run's by the time the binary binds it.
  // The discard transport needs nothing external; the deployment's transport is not under test here.
  const p = Bun.spawn([bin, 'serve'], {
    env: releaseEnv({
      DATABASE_URL: db.url,
      MAIL_TRANSPORT: 'discard',
      PORT: '0',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      // fly.toml's own HOST: the scraper and `fly proxy` come over Fly's private network, in IPv6.
      HOST: flyEnv(fly).HOST ?? '127.0.0.1',
    }),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(p.stdout)
  let signalledAt = 0
  try {
    const { port, metricsPort } = await listeningPorts(stdout, p.exited)
    expect(metricsPort).not.toBeNull()
    const checks = fly.http_service?.checks ?? []
    expect(checks.length).toBeGreaterThan(0)
    for (const c of checks) {
      const status = await pollUntil(async () => {
        const res = await fetch(`http://127.0.0.1:${port}${c.path}`, {
          method: c.method ?? 'GET',
        }).catch(() => null)
        return res?.status === 200 ? res.status : undefined
      })
      expect({ path: c.path, status }).toEqual({ path: c.path, status: 200 })
    }
    for (const m of metricsList(fly)) {
      const res = await fetch(`http://[::1]:${metricsPort}${m.path}`)
      expect({ path: m.path, status: res.status }).toEqual({ path: m.path, status: 200 })
      expect(await res.text()).toContain('outbox_')
      // Not on the public port.
      expect((await fetch(`http://127.0.0.1:${port}${m.path}`)).status).toBe(404)
    }
  } finally {
    signalledAt = Date.now()
    p.kill('SIGTERM')
  }
  const code = await p.exited
  const seconds = (Date.now() - signalledAt) / 1000
  expect(code).toBe(0)
  expect(seconds).toBeLessThan(durationSeconds(fly.kill_timeout)!)
})
