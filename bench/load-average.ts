// The machine's load as `uptime` prints it ("load average: …"), for a tool's before and after lines.
import { execSync } from 'node:child_process'

export const loadAverage = (): string =>
  execSync('uptime')
    .toString()
    .trim()
    .replace(/^.*load/, 'load')
