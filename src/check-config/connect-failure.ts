// A database connect that failed, in words: the server's, and a refused login's, a TLS or a network failure's cause and what to check.
import { withLoginAdvice } from '../db/login-refusal.ts'
import { withTlsAdvice } from '../db/tls-failure.ts'
import { withUnreachableAdvice } from '../db/unreachable-cause.ts'
import { describe } from './findings.ts'

/** A failed connect in the server's words; a login it refused (password, role, database), a TLS or a network failure with its cause and what to check. */
export const connectFailure = (e: unknown): string =>
  withUnreachableAdvice(withTlsAdvice(withLoginAdvice(describe(e), e), e), e)
