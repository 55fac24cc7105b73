// The environment `bun run dev` runs with: the shell's settings, but its own database, transport and address.

export interface DevPlaces {
  /** The embedded database's URL. */
  url: string
  mailDir: string
  port: number
}

/**
 * A shell that also deploys holds the real DATABASE_URL, LISTEN_DATABASE_URL or MAILER_DATABASES
 * (the deploy guide checks the configuration with them exported): dev must not listen on, or drain,
 * any database but its embedded one, so every database setting is replaced, not just DATABASE_URL.
 */
export function devEnvironment(
  env: Record<string, string | undefined>,
  places: DevPlaces,
): Record<string, string | undefined> {
  const { MAILER_DATABASES: _several, ...rest } = env
  return {
    ...rest,
    DATABASE_URL: places.url,
    LISTEN_DATABASE_URL: places.url,
    MAIL_TRANSPORT: 'file',
    MAIL_FILE_DIR: places.mailDir,
    MAIL_FROM: env.MAIL_FROM ?? 'outbox@example.com',
    PORT: String(places.port),
    HOST: '127.0.0.1',
  }
}
