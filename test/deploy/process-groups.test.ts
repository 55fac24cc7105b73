// Every Fly process group that drains the outbox is checked on /readyz and scraped: fly.toml as it stands, and split into api and worker as the guide's step 10 says.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { ENV_VARS } from '../../src/config/env-vars.ts'
import {
  execForm,
  type FlyConfig,
  groupSections,
  processGroups,
  processRoles,
  ROOT,
  readDockerfile,
  readFlyConfig,
} from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const fly = await readFlyConfig()
const guide = await Bun.file(resolve(ROOT, 'deploy/README.md')).text()
const imageCmd =
  execForm(
    (await readDockerfile())
      .at(-1)!
      .instructions.filter((i) => i.op === 'CMD')
      .at(-1)?.args,
  ) ?? []
const port = Number(ENV_VARS.find((v) => v.name === 'PORT')!.default)
const metricsPort = Number(fly.env?.METRICS_PORT)

/** fly.toml with step 10's edits: its two process groups, and the HTTP service on `api` only. */
function splitAsGuideSays(): FlyConfig {
  const step = guide.slice(guide.indexOf('## 10.'), guide.indexOf('## 11.'))
  const processes = Object.fromEntries(
    [...step.matchAll(/`(?:\[processes\] )?(api|worker) = "([^"]+)"`/g)].map((m) => [m[1]!, m[2]!]),
  )
  const served = /set\s+`processes = \["(\w+)"\]`\s+under\s+`\[http_service\]`/.exec(step)?.[1]
  expect(processes).toEqual({ api: 'serve --role api', worker: 'serve --role worker' })
  expect(served).toBe('api')
  return { ...fly, processes, http_service: { ...fly.http_service, processes: [served!] } }
}

const layouts: [string, () => FlyConfig][] = [
  ['fly.toml as it stands', () => fly],
  ['split as step 10 says', splitAsGuideSays],
]

describe.each(layouts)('%s', (_, layout) => {
  test('every group that drains has an HTTP check on /readyz at the port the binary listens on', () => {
    const config = layout()
    const roles = processRoles(config, imageCmd)
    for (const group of processGroups(config)) {
      if (roles[group] === 'api') continue
      const { serviceChecks, checks } = groupSections(config, group)
      const readiness = [...serviceChecks, ...checks].filter(
        (c) =>
          c.path === '/readyz' && c.port === port && (c.method ?? 'GET').toUpperCase() === 'GET',
      )
      expect({ group, readinessChecks: readiness.length }).toEqual({ group, readinessChecks: 1 })
      for (const c of checks) expect({ group, type: c.type }).toEqual({ group, type: 'http' })
    }
  })

  test('every group is scraped on the metrics port', () => {
    const config = layout()
    for (const group of processGroups(config)) {
      const ports = groupSections(config, group).metrics.map((m) => m.port)
      expect({ group, ports }).toEqual({ group, ports: [metricsPort] })
    }
  })
})

test('the worker check waits, times out and repeats as the HTTP service’s check does', () => {
  const service = fly.http_service?.checks?.[0]
  const worker = Object.values(fly.checks ?? {}).find((c) => c.processes?.includes('worker'))
  expect(worker).toMatchObject({
    grace_period: service?.grace_period,
    interval: service?.interval,
    timeout: service?.timeout,
  })
})
