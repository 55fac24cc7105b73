// What serve's log warns of in its configuration as it starts: check-config says the same, but a serve log is where an operator who skipped it looks.
import { graphConcurrencyWarning } from './config/outlook-concurrency.ts'
import { apiMailFromWarning, MAIL_FROM_UNSET_WARNING } from './config/sender-mailbox.ts'
import {
  URL_APPLICATION_NAME_WARNING,
  urlsNamingApplication,
} from './config/url-application-name.ts'
import type { Config } from './config.ts'
import type { Logger } from './log.ts'
import type { ServeOptions } from './serve-options.ts'

/** Logs each warning at `warn`, with its fields; refuses nothing. */
export function warnOfConfigAtStart(config: Config, role: ServeOptions['role'], log: Logger): void {
  if (role !== 'api' && config.transport !== 'graph' && config.mailFrom === null) {
    log.warn(MAIL_FROM_UNSET_WARNING, { transport: config.transport })
  }
  const apiMailFrom = role === 'api' ? apiMailFromWarning(config.mailFrom, config.transport) : null
  if (apiMailFrom) log.warn(apiMailFrom, { transport: config.transport })
  const concurrency = graphConcurrencyWarning({
    role,
    transport: config.transport,
    graphMaxConcurrency: config.limits.graphMaxConcurrency,
  })
  if (concurrency) log.warn(concurrency, { graphMaxConcurrency: config.limits.graphMaxConcurrency })
  for (const { db, variable } of urlsNamingApplication(config.databases))
    log.warn(`the database URL ${URL_APPLICATION_NAME_WARNING}`, { db, variable })
}
