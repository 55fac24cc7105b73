// fly.toml and the Dockerfile must agree with the binary: port, paths, drain window, command, user.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import pkg from '../../package.json' with { type: 'json' }
import { ENV_VARS } from '../../src/config/env-vars.ts'
import { loadConfig } from '../../src/config.ts'
import { LONGEST_PAST_DEADLINE_MS } from '../../src/db/migrate-deadline.ts'
import {
  type DockerStage,
  dockerContextIncludes,
  durationSeconds,
  execForm,
  type FlyConfig,
  flyEnv,
  metricsList,
  parseDockerfile,
  processRoles,
  ROOT,
  readDockerfile,
  readDockerignore,
  readFlyConfig,
  stageEnv,
} from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const fly: FlyConfig = await readFlyConfig()
const stages: DockerStage[] = await readDockerfile()
const runtime = stages.at(-1)!
const build = stages[0]!

/** What the binary would load with fly.toml's [env] plus the secrets the runbook sets. */
function configUnderFly() {
  return loadConfig({
    GRAPH_TENANT_ID: 'contoso.onmicrosoft.com',
    GRAPH_CLIENT_ID: '11111111-1111-1111-1111-111111111111',
    MAIL_FROM: 'notifications@example.com',
    GRAPH_CLIENT_SECRET: 'placeholder-not-a-secret',
    ...flyEnv(fly),
    DATABASE_URL: 'postgres://pooled.example/app',
    LISTEN_DATABASE_URL: 'postgres://direct.example/app',
  })
}

const bunVersion = pkg.packageManager.replace(/^bun@/, '')
const ops = (stage: DockerStage, op: string) => stage.instructions.filter((i) => i.op === op)
const last = (stage: DockerStage, op: string) => ops(stage, op).at(-1)?.args

describe('fly.toml', () => {
  test('kill_signal is SIGTERM, which the binary drains on', async () => {
    expect(fly.kill_signal).toBe('SIGTERM')
    expect(await Bun.file(resolve(ROOT, 'src/run-until-signalled.ts')).text()).toContain(
      "process.on('SIGTERM'",
    )
  })

  test('kill_timeout outlasts the shutdown grace with a margin, within Fly’s 300 s cap', () => {
    const grace = configUnderFly().worker.shutdownGraceSeconds
    const defaultGrace = ENV_VARS.find((v) => v.name === 'SHUTDOWN_GRACE_SECONDS')!.default
    expect(grace).toBe(Number(fly.env?.SHUTDOWN_GRACE_SECONDS ?? defaultGrace))
    const kill = durationSeconds(fly.kill_timeout)
    expect(kill).toBeDefined()
    expect(kill!).toBeGreaterThanOrEqual(grace + 10)
    expect(kill!).toBeLessThanOrEqual(300)
  })

  test('release_command runs migrate through the image entrypoint, with no shell', () => {
    const argv = (fly.deploy?.release_command ?? '').split(/\s+/)
    expect(argv).toEqual(['migrate'])
    // Fly replaces CMD, not ENTRYPOINT: so the binary is what runs it.
    expect(execForm(last(runtime, 'ENTRYPOINT'))).toEqual(['/app/outbox-mailer'])
  })

  test("migrate's default deadline, and what it may run past it, end the release command within Fly's release_command_timeout (5 minutes unset)", () => {
    const window = durationSeconds(fly.deploy?.release_command_timeout) ?? 300
    const deadline = configUnderFly().migrate.deadlineSeconds
    expect(deadline).toBeGreaterThan(0)
    expect(deadline + LONGEST_PAST_DEADLINE_MS / 1000).toBeLessThanOrEqual(window)
  })

  test('migrate uses the direct URL when one is set', async () => {
    // The release machine gets both URLs; migrations need a session connection, not a pooler.
    expect(configUnderFly().databases[0]!.listenUrl).toBe('postgres://direct.example/app')
    const main = await Bun.file(resolve(ROOT, 'src/db/migrate-every.ts')).text()
    expect(main).toMatch(/migrate\(\{\s*url:\s*d\.listenUrl/)
  })

  test('the HTTP service targets the port the binary listens on', () => {
    const port = configUnderFly().http.port
    expect(port).toBe(Number(ENV_VARS.find((v) => v.name === 'PORT')!.default))
    expect(fly.http_service?.internal_port).toBe(port)
    expect(fly.services ?? []).toEqual([])
  })

  test('the HTTP checks probe /readyz, a route the binary serves', async () => {
    const paths = (fly.http_service?.checks ?? []).map((c) => c.path)
    expect(paths).toContain('/readyz')
    const sources = [
      await Bun.file(resolve(ROOT, 'src/serve.ts')).text(),
      await Bun.file(resolve(ROOT, 'src/api/routes/health.ts')).text(),
    ].join('\n')
    for (const p of paths) expect(sources).toContain(`'${p}'`)
  })

  test('no machine that drains the outbox is ever auto-stopped by the proxy', () => {
    const roles = processRoles(fly, execForm(last(runtime, 'CMD')) ?? [])
    const served = fly.http_service?.processes ?? Object.keys(roles)
    for (const group of served) {
      const role = roles[group]
      expect(role).toBeDefined()
      if (role === 'api') continue
      // A draining worker gets no HTTP traffic, so the proxy would think it idle.
      expect([false, 'off']).toContain(fly.http_service?.auto_stop_machines ?? 'unset')
    }
    for (const [group, role] of Object.entries(roles)) {
      expect({ group, role }).toMatchObject({ role: expect.stringMatching(/^(all|worker|api)$/) })
    }
  })

  test('metrics are scraped from /metrics on the binary’s private metrics port, which no service exposes', async () => {
    const metrics = metricsList(fly)
    expect(metrics.length).toBeGreaterThan(0)
    const { port, metricsPort } = configUnderFly().http
    expect(metricsPort).not.toBeNull()
    expect(metricsPort).not.toBe(port)
    for (const m of metrics) {
      expect(m.path).toBe('/metrics')
      expect(m.port).toBe(metricsPort ?? undefined)
    }
    // Only http_service is public, on PORT: the metrics port stays on Fly's private network.
    expect(fly.http_service?.internal_port).toBe(port)
    expect(fly.services ?? []).toEqual([])
    const route = await Bun.file(resolve(ROOT, 'src/api/routes/metrics.ts')).text()
    expect(route).toContain("path: '/metrics'")
  })

  test('no volume: nothing is mounted', () => {
    expect(fly.mounts).toBeUndefined()
    expect(Object.keys(fly)).not.toContain('mount')
  })

  test('[env] holds only known, non-secret variables', () => {
    const known = new Set(ENV_VARS.map((v) => v.name))
    const secretName = /SECRET|PASSWORD|PRIVATE_KEY|TOKEN|CERTIFICATE|DATABASE_URL|DATABASES$/
    for (const [name, value] of Object.entries(flyEnv(fly))) {
      expect({ name, known: known.has(name) }).toEqual({ name, known: true })
      expect({ name, secretName: secretName.test(name) }).toEqual({ name, secretName: false })
      expect(value).not.toMatch(/-----BEGIN|:\/\/[^/@\s]+:[^/@\s]+@/)
    }
  })
})

describe('Dockerfile', () => {
  test('builds in a pinned oven/bun image matching package.json packageManager', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(build.from).toBe(`oven/bun:${bunVersion}`)
    expect(pkg.engines.bun).toBe(bunVersion)
  })

  test('installs from the frozen lockfile and compiles with `bun run build`', () => {
    const runs = ops(build, 'RUN').map((r) => r.args)
    expect(runs.some((r) => /\bbun install\b.*--frozen-lockfile/.test(r))).toBe(true)
    expect(runs.some((r) => /\bbun run build\b/.test(r))).toBe(true)
    expect(pkg.scripts.build).toContain('--outfile dist/outbox-mailer')
  })

  test('the runtime stage has glibc: no musl, static or scratch base', () => {
    expect(runtime.from).toMatch(
      /^(debian:(bookworm|trixie)-slim|gcr\.io\/distroless\/(cc|base)-debian1[2-9])/,
    )
    expect(runtime.from).not.toMatch(/alpine|static|scratch|musl/)
  })

  test('the runtime stage holds only the compiled binary from the build stage', () => {
    const copies = ops(runtime, 'COPY')
    expect(copies.length).toBe(1)
    const from = build.name ?? '0'
    expect(copies[0]!.args).toBe(`--from=${from} /src/dist/outbox-mailer /app/outbox-mailer`)
    expect(ops(runtime, 'ADD')).toEqual([])
  })

  test('runs as a non-root user', () => {
    const user = last(runtime, 'USER')
    expect(user).toBeDefined()
    const name = user!.split(':')[0]!
    expect(['root', '0']).not.toContain(name)
    expect(ops(runtime, 'USER').at(-1)!.line).toBeGreaterThan(ops(runtime, 'RUN').at(-1)?.line ?? 0)
  })

  test('exec-form ENTRYPOINT is the binary, CMD is serve, EXPOSE is the binary’s port', () => {
    expect(execForm(last(runtime, 'ENTRYPOINT'))).toEqual(['/app/outbox-mailer'])
    expect(execForm(last(runtime, 'CMD'))).toEqual(['serve'])
    expect(last(runtime, 'EXPOSE')).toBe(String(configUnderFly().http.port))
  })

  test('the image sets only the allocator tuning; configuration stays in fly.toml and secrets', () => {
    // The binary's own settings are validated from fly.toml [env] and secrets (tests above); an ENV
    // here would be a second, silent source of them.
    expect(stageEnv(runtime)).toEqual({ MIMALLOC_PURGE_HOLES: '0' })
    expect(stageEnv(build)).toEqual({})
  })

  test('ENV is read in NAME=value form only', () => {
    const [stage] = parseDockerfile('FROM x\nENV A=1 B="two"\nENV C=3\n')
    expect(stageEnv(stage!)).toEqual({ A: '1', B: 'two', C: '3' })
    const [legacy] = parseDockerfile('FROM x\nENV A 1\n')
    expect(() => stageEnv(legacy!)).toThrow('cannot read ENV on line 2')
  })

  test('.dockerignore keeps secrets, state and build output out of the context', async () => {
    const rules = await readDockerignore()
    for (const p of ['.env', '.env.production', '.git/config', '.data/pg/PG_VERSION', 'dist/x']) {
      expect({ p, sent: dockerContextIncludes(rules, p) }).toEqual({ p, sent: false })
    }
    for (const p of ['node_modules/pg/package.json', 'mail-out/1.eml', 'test/deploy/x.ts']) {
      expect({ p, sent: dockerContextIncludes(rules, p) }).toEqual({ p, sent: false })
    }
    for (const p of ['package.json', 'bun.lock', 'src/main.ts', 'sql/0001_mailer_schema.sql']) {
      expect({ p, sent: dockerContextIncludes(rules, p) }).toEqual({ p, sent: true })
    }
  })
})
