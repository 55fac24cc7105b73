// Process warnings (a library's process.emitWarning, the runtime's deprecations) as one log line each instead of raw text on stderr.
import type { Logger } from './log.ts'

/**
 * Node and Bun both print a 'warning' event through a listener of their own, as several lines on
 * stderr (pg-connection-string's about `sslmode`, at every start, takes nine): in a JSON-lines log that
 * is a record no collector parses. That printer is taken off and every warning, of whatever kind,
 * is logged at warn instead, with a fixed message; `mask` scrubs secrets from its text (a library
 * may quote what it was given). Returns the undo.
 */
export function logProcessWarnings(
  log: Logger,
  mask: (s: string) => string = (s) => s,
): () => void {
  const printers = process.listeners('warning')
  for (const p of printers) process.off('warning', p)
  const onWarning = (w: Error & { code?: unknown }) => {
    log.warn('process warning', {
      warning: w.name,
      code: typeof w.code === 'string' ? w.code : undefined,
      detail: mask(w.message),
    })
  }
  process.on('warning', onWarning)
  return () => {
    process.off('warning', onWarning)
    for (const p of printers) process.on('warning', p)
  }
}
