// A command's flag values read: positive decimal seconds (status' and migrate's bounds), migrate's deadline, serve's and check-config's role.
import { LONGEST_MIGRATE_DEADLINE_SECONDS } from './config/env-schema.ts'
import { secondsWritten } from './config/seconds-written.ts'
import { AppError } from './errors.ts'
import type { Role } from './serve-options.ts'

// status --timeout's longest: a day. It bounds timers, which past 2^31 - 1 ms (about 24.8 days)
// fire at once, so a longer one reported every database unreachable.
const LONGEST_STATUS_TIMEOUT_SECONDS = 86_400

// A plain decimal: digits with at most one point, `.5` and `5.` as well as `0.5` (review57: `.5`
// was refused while `0.5` ran). No sign, exponent, hex, separator or unit.
const DECIMAL_SECONDS = /^\s*(\d+\.?\d*|\.\d+)\s*$/

/** A flag's positive number of seconds (at most `longest`, when given), or its default when absent. */
export function parseSeconds(
  flag: string,
  value: string | undefined,
  fallback: number,
  longest = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback
  // Decimal seconds only, as --deadline and the *_SECONDS variables take them: Number() would also
  // take '0x12c' and '1e3'. One written with a unit is told what it stands for (secondsWritten).
  const n = DECIMAL_SECONDS.test(value) ? Number(value) : Number.NaN
  if (!Number.isFinite(n) || n <= 0) {
    const seconds = secondsWritten(value.trim(), 1, longest)
    throw new AppError(
      'config_invalid',
      seconds === null
        ? `${flag} must be a positive number of seconds (got "${value}")`
        : `${flag} must be a positive number of seconds, without a unit (got "${value}": that is ${seconds})`,
    )
  }
  if (n > longest) {
    throw new AppError('config_invalid', `${flag} is at most ${longest} seconds (got "${value}")`)
  }
  return n
}

/** status --timeout: positive seconds up to a day, 5 when absent. */
export const parseStatusTimeoutSeconds = (value: string | undefined) =>
  parseSeconds('--timeout', value, 5, LONGEST_STATUS_TIMEOUT_SECONDS)

/** migrate --deadline: a number of seconds up to a day, 0 for none; absent, undefined (MIGRATE_DEADLINE_SECONDS then). */
export function parseDeadlineSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  // Decimal seconds only: Number() would also take '1e3', '0x10' and '' (0, none), none of them meant.
  const n = DECIMAL_SECONDS.test(value) ? Number(value) : Number.NaN
  if (!Number.isFinite(n)) {
    throw new AppError(
      'config_invalid',
      `--deadline must be a number of seconds, 0 for none (got "${value}")`,
    )
  }
  if (n > LONGEST_MIGRATE_DEADLINE_SECONDS) {
    throw new AppError(
      'config_invalid',
      `--deadline is at most ${LONGEST_MIGRATE_DEADLINE_SECONDS} seconds (a day); 0 for none (got "${value}")`,
    )
  }
  return n
}

export function parseRole(value: string | undefined): Role {
  if (value === undefined) return 'all'
  if (value === 'all' || value === 'worker' || value === 'api') return value
  throw new AppError('config_invalid', `--role must be all, worker or api (got "${value}")`)
}
