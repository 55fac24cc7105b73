// Binding an HTTP server, with an error that names the address and the variables that set it.
import type { Config } from './config.ts'
import { AppError, describeError } from './errors.ts'

/**
 * Binds the HTTP server; Bun's own error guesses "port in use?" and names neither host nor port.
 * `variables` are the ones that set this address: /metrics' own listener is METRICS_PORT's, and
 * naming PORT for it sent the operator to a port that was free.
 */
export function listen(
  http: Config['http'],
  fetch: (req: Request) => Response | Promise<Response>,
  variables = 'HOST, PORT',
): ReturnType<typeof Bun.serve> {
  try {
    return Bun.serve({ hostname: http.host, port: http.port, fetch })
  } catch (e) {
    const address = http.host.includes(':')
      ? `[${http.host}]:${http.port}`
      : `${http.host}:${http.port}`
    const code = (e as { code?: unknown }).code
    const reason = describeError(e)
    throw new AppError(
      'internal',
      `cannot listen on ${address} (${variables}): ${typeof code === 'string' && !reason.includes(code) ? `${code}: ` : ''}${reason}`,
      { host: http.host, port: http.port },
      { cause: e },
    )
  }
}
