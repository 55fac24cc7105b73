// A database URL whose TLS does not check the server's certificate, as the driver reads it today: which URLs do, and what check-config says of them.
import { parse } from 'pg-connection-string'
import { type DatabaseConfig, databaseUrls } from './database-list.ts'

/**
 * Each of the databases' URLs whose TLS takes any certificate, by the driver's own parser
 * (rejectUnauthorized false), once, with what in it says so: a warning line naming its variable.
 * Only what the driver does now: node-postgres 8 reads sslmode=require and prefer as verify-full
 * (its own SECURITY WARNING says 9 will not), so those are checked and not named; read by 9 as no
 * check, they would be. A URL with no TLS (sslmode=disable) asks for none: not named.
 */
export function certificateUncheckedWarnings(databases: readonly DatabaseConfig[]): string[] {
  return databaseUrls(databases).flatMap(({ url, variable }) => {
    const { ssl, sslmode, uselibpqcompat } = parse(url)
    if (typeof ssl !== 'object' || ssl.rejectUnauthorized !== false) return []
    const how = `${uselibpqcompat === 'true' ? 'uselibpqcompat=true with ' : ''}sslmode=${String(sslmode)}`
    return [
      `${variable} asks for TLS without checking the server's certificate (${how}): whatever is on the network path can pose as the database; use sslmode=verify-full, with sslrootcert=<its CA's PEM> for a private CA (deploy guide, step 4)`,
    ]
  })
}
