// zod-openapi's defaultHook: every request validation failure as one validation_failed error, each invalid field named and worded.
import type { ZodError } from 'zod'
import { AppError } from '../errors.ts'
import { withGivenValue, worded } from './issue-wording.ts'
import { closest } from './union-issues.ts'
import { eachUnknownKey } from './unknown-keys.ts'

// A query parameter, header or path parameter is named alone: status=a&status=b arrives as an
// array, whose index (status.1) names nothing the client wrote.
const FLAT_TARGETS = new Set(['query', 'header', 'param'])

/**
 * zod-openapi's defaultHook: every validation failure takes the same problem shape. `data` is the
 * request part validated (the value a message may name the kind of), `target` which part it is.
 */
export function validationHook(result: {
  success: boolean
  error?: ZodError
  data?: unknown
  target?: string
}): undefined {
  if (result.success || !result.error) return undefined
  const flat = FLAT_TARGETS.has(result.target ?? '')
  const said = new Set<string>()
  const errors = result.error.issues
    .flatMap((i) => closest(i, []))
    .flatMap(eachUnknownKey)
    .map((i) => ({
      path: (flat ? i.path.slice(0, 1) : i.path).map(String).join('.') || '(root)',
      // A parameter the route does not take is wrong by its name: its value is not quoted.
      message:
        result.target === 'query' && i.code !== 'unrecognized_keys'
          ? withGivenValue(worded(i, result.data), result.data, i.path)
          : worded(i, result.data),
    }))
    // Two values of one repeated parameter refused alike are one problem (a query's each say theirs).
    .filter((e) => {
      const key = JSON.stringify([e.path, e.message])
      if (said.has(key)) return false
      said.add(key)
      return true
    })
  const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ')
  throw new AppError('validation_failed', detail, { errors })
}
