// Reads the release files (fly.toml, Dockerfile, .dockerignore) into plain shapes the deploy tests assert on.
import { resolve } from 'node:path'
import { parse } from 'smol-toml'

export const ROOT = resolve(import.meta.dir, '../..')

export interface FlyCheck {
  path?: string
  method?: string
  interval?: string
  timeout?: string
  grace_period?: string
}

export interface FlyHttpService {
  internal_port?: number
  auto_stop_machines?: string | boolean
  processes?: string[]
  checks?: FlyCheck[]
}

export interface FlyMetrics {
  port?: number
  path?: string
  processes?: string[]
}

/** A top-level `[checks.NAME]`: no routing, shown by `fly checks list` and `fly status`. */
export interface FlyTopLevelCheck extends FlyCheck {
  type?: string
  port?: number
  processes?: string[]
}

export interface FlyConfig {
  app?: string
  kill_signal?: string
  kill_timeout?: string | number
  deploy?: { release_command?: string; release_command_timeout?: string }
  env?: Record<string, unknown>
  processes?: Record<string, string>
  http_service?: FlyHttpService
  services?: unknown[]
  metrics?: FlyMetrics | FlyMetrics[]
  checks?: Record<string, FlyTopLevelCheck>
  mounts?: unknown
  [key: string]: unknown
}

export async function readFlyConfig(): Promise<FlyConfig> {
  return parse(await Bun.file(resolve(ROOT, 'fly.toml')).text()) as unknown as FlyConfig
}

/** Fly durations: an integer of seconds, or a string such as "30s", "2m", "1m30s". */
export function durationSeconds(v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'number') return v
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)]
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== v.trim()) {
    throw new Error(`not a Fly duration: "${v}"`)
  }
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 } as const
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2] as keyof typeof unit], 0)
}

export function metricsList(fly: FlyConfig): FlyMetrics[] {
  if (fly.metrics === undefined) return []
  return Array.isArray(fly.metrics) ? fly.metrics : [fly.metrics]
}

/** The process groups of a config: its [processes] names, or Fly's one group `app` without them. */
export function processGroups(fly: FlyConfig): string[] {
  const names = Object.keys(fly.processes ?? {}).sort()
  return names.length > 0 ? names : ['app']
}

/** The role each process group serves, from its command or (no [processes]) the image's CMD. */
export function processRoles(fly: FlyConfig, imageCmd: string[]): Record<string, string> {
  const roleOf = (argv: string[]) => {
    if (argv[0] !== 'serve') return `not serve (${argv.join(' ')})`
    const i = argv.indexOf('--role')
    return i >= 0 ? argv[i + 1]! : (argv.find((a) => a.startsWith('--role='))?.slice(7) ?? 'all')
  }
  if (!fly.processes) return { app: roleOf(imageCmd) }
  return Object.fromEntries(
    Object.entries(fly.processes).map(([group, cmd]) => [group, roleOf(cmd.split(/\s+/))]),
  )
}

/**
 * What the machines of one process group get of fly.toml, picked as flyctl's Flatten does
 * (internal/appconfig/processgroups.go): a section that names processes goes to those groups, one
 * that names none only to the default group (`app` when there is one, else the first name in order).
 */
export function groupSections(fly: FlyConfig, group: string) {
  const groups = processGroups(fly)
  const defaultGroup = groups.includes('app') ? 'app' : groups[0]!
  const applies = (processes: string[] | undefined) =>
    processes === undefined || processes.length === 0
      ? group === defaultGroup
      : processes.includes(group)
  const service = fly.http_service && applies(fly.http_service.processes) ? fly.http_service : null
  return {
    serviceChecks: (service?.checks ?? []).map((c) => ({ ...c, port: service!.internal_port })),
    checks: Object.values(fly.checks ?? {}).filter((c) => applies(c.processes)),
    metrics: metricsList(fly).filter((m) => applies(m.processes)),
  }
}

/** Env the binary would see from fly.toml alone (secrets come on top). */
export function flyEnv(fly: FlyConfig): Record<string, string> {
  return Object.fromEntries(Object.entries(fly.env ?? {}).map(([k, v]) => [k, String(v)]))
}

export interface DockerInstruction {
  op: string
  args: string
  line: number
}

export interface DockerStage {
  from: string
  name: string | null
  instructions: DockerInstruction[]
}

/** A small Dockerfile reader: continuation lines joined, comments dropped, split into stages. */
export function parseDockerfile(text: string): DockerStage[] {
  const stages: DockerStage[] = []
  const lines = text.split('\n')
  let buffer = ''
  let startLine = 0
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim()
    if (buffer === '' && (line === '' || line.startsWith('#'))) continue
    if (buffer !== '' && line.startsWith('#')) continue
    if (buffer === '') startLine = i + 1
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `
      continue
    }
    buffer += line
    const m = /^(\S+)\s*(.*)$/s.exec(buffer)
    buffer = ''
    if (!m) continue
    const op = m[1]!.toUpperCase()
    const args = m[2]!.replace(/\s+/g, ' ').trim()
    if (op === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      if (!f) throw new Error(`cannot read FROM on line ${startLine}: ${args}`)
      stages.push({ from: f[1]!, name: f[2] ?? null, instructions: [] })
      continue
    }
    const stage = stages.at(-1)
    if (!stage) throw new Error(`${op} before FROM on line ${startLine}`)
    stage.instructions.push({ op, args, line: startLine })
  }
  return stages
}

export async function readDockerfile(): Promise<DockerStage[]> {
  return parseDockerfile(await Bun.file(resolve(ROOT, 'Dockerfile')).text())
}

/**
 * The environment a stage's ENV instructions set, in `ENV NAME=value …` form (values unquoted or
 * double-quoted, no spaces); the legacy `ENV NAME value` form is refused rather than guessed at.
 */
export function stageEnv(stage: DockerStage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const i of stage.instructions.filter((x) => x.op === 'ENV')) {
    for (const pair of i.args.split(' ')) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=("?)([^"]*)\2$/.exec(pair)
      if (!m) throw new Error(`cannot read ENV on line ${i.line}: ${i.args}`)
      env[m[1]!] = m[3]!
    }
  }
  return env
}

/** The environment the release image gives the binary (the runtime stage's ENV). */
export async function imageEnv(): Promise<Record<string, string>> {
  const stage = (await readDockerfile()).at(-1)
  if (!stage) throw new Error('Dockerfile has no stage')
  return stageEnv(stage)
}

/** The JSON array of an exec-form ENTRYPOINT/CMD; null for shell form. */
export function execForm(args: string | undefined): string[] | null {
  if (args === undefined || !args.startsWith('[')) return null
  const v: unknown = JSON.parse(args)
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null
}

/** Whether a path would be sent to the Docker build context under these .dockerignore rules. */
export function dockerContextIncludes(rules: string[], path: string): boolean {
  let included = true
  for (const rule of rules) {
    const negated = rule.startsWith('!')
    const pattern = (negated ? rule.slice(1) : rule).replace(/\/+$/, '')
    const glob = new Bun.Glob(pattern)
    // Docker matches a directory rule against everything beneath it.
    const top = path.split('/').slice(0, pattern.split('/').length).join('/')
    if (glob.match(path) || glob.match(top)) included = negated
  }
  return included
}

export async function readDockerignore(): Promise<string[]> {
  const text = await Bun.file(resolve(ROOT, '.dockerignore')).text()
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}
