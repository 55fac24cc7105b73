// Process warnings (a library's process.emitWarning, the runtime's deprecations) as one log line each, or one line of a command's report, instead of raw text on stderr.
import type { Logger } from './log.ts'

type ProcessWarning = Error & { code?: unknown }

/**
 * Node and Bun both print a 'warning' event through a listener of their own, as several lines on
 * stderr (pg-connection-string's about `sslmode`, at every start, takes nine): in a JSON-lines log, or
 * beside a report whose stdout is one JSON object, that is text nothing parses. That printer is taken
 * off and every warning, of whatever kind, goes to `on` instead. Returns the undo.
 */
function divertProcessWarnings(on: (w: ProcessWarning) => void): () => void {
  const printers = process.listeners('warning')
  for (const p of printers) process.off('warning', p)
  process.on('warning', on)
  return () => {
    process.off('warning', on)
    for (const p of printers) process.on('warning', p)
  }
}

const codeOf = (w: ProcessWarning) => (typeof w.code === 'string' ? w.code : undefined)

/**
 * Every warning logged at warn, with a fixed message; `mask` scrubs secrets from its text (a library
 * may quote what it was given). Returns the undo.
 */
export function logProcessWarnings(
  log: Logger,
  mask: (s: string) => string = (s) => s,
): () => void {
  return divertProcessWarnings((w) => {
    log.warn('process warning', { warning: w.name, code: codeOf(w), detail: mask(w.message) })
  })
}

interface CollectedWarnings {
  /** The warnings so far, once a warning raised just before (emitted on a later tick) is in. */
  settled(): Promise<string[]>
  undo(): void
}

/**
 * For a command that prints one report (status, check-config): every warning kept as one line of
 * text, masked, named by its kind unless a plain Warning (`DeprecationWarning DEP0005: …`).
 */
export function collectProcessWarnings(mask: (s: string) => string): CollectedWarnings {
  const lines: string[] = []
  const undo = divertProcessWarnings((w) => {
    const code = codeOf(w)
    const kind = w.name === 'Warning' && !code ? '' : `${w.name}${code ? ` ${code}` : ''}: `
    const text = mask(w.message)
      .replace(/\s*\n\s*/g, ' ')
      .trim()
    lines.push(`${kind}${text}`)
  })
  return {
    // A warning is emitted on the next tick after it is raised: an immediate runs after it.
    settled: () => new Promise((r) => setImmediate(() => r([...lines]))),
    undo,
  }
}
