// Binding an HTTP server, with an error that names the address, the variables that set it and, for a held port, what happened.
import type { Config } from './config.ts'
import { AppError, describeError } from './errors.ts'

/** What a failed bind says beside its message: serve logs these as fields, dev adds its hint from them. */
export interface ListenRefusal {
  host: string
  port: number
  /** The variables that set this address: "HOST, PORT" or "HOST, METRICS_PORT". */
  variables: string
  /** The variable that set the port, the one to change for a held port. */
  portVariable: PortVariable
  /** The system's code (EADDRINUSE, EACCES, …), when the error carried one. */
  code?: string
}

/** What set a listener's port: the API's (and /metrics' with it), or /metrics' own. */
export type PortVariable = 'PORT' | 'METRICS_PORT'

/** A failed bind: its details are the refusal's fields. */
class ListenRefused extends AppError {
  constructor(
    message: string,
    readonly refusal: ListenRefusal,
    cause: unknown,
  ) {
    super('internal', message, { ...refusal }, { cause })
  }
}

/**
 * Binds the HTTP server; Bun's own error guesses "port in use?" and names neither host nor port.
 * `portVariable` set this port (HOST the host): /metrics' own listener is METRICS_PORT's, and
 * naming PORT for it sent the operator to a port that was free.
 */
export function listen(
  http: Config['http'],
  fetch: (req: Request) => Response | Promise<Response>,
  portVariable: PortVariable = 'PORT',
): ReturnType<typeof Bun.serve> {
  try {
    return Bun.serve({ hostname: http.host, port: http.port, fetch })
  } catch (e) {
    const address = http.host.includes(':')
      ? `[${http.host}]:${http.port}`
      : `${http.host}:${http.port}`
    const variables = `HOST, ${portVariable}`
    const raw = (e as { code?: unknown }).code
    const code = typeof raw === 'string' ? raw : undefined
    const reason = describeError(e)
    // The one a user meets (dev's 8080, a second serve): said plainly, not as Bun's guess.
    const why =
      code === 'EADDRINUSE'
        ? 'another program holds that port (EADDRINUSE)'
        : `${code !== undefined && !reason.includes(code) ? `${code}: ` : ''}${reason}`
    const refusal: ListenRefusal = {
      host: http.host,
      port: http.port,
      variables,
      portVariable,
      ...(code !== undefined ? { code } : {}),
    }
    throw new ListenRefused(`cannot listen on ${address} (${variables}): ${why}`, refusal, e)
  }
}

/** The address and variables of a failed bind (`listen`'s error), or null for any other error. */
export function listenRefusal(e: unknown): ListenRefusal | null {
  return e instanceof ListenRefused ? e.refusal : null
}
