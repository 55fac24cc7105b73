// A server that refused this service's connection at login (wrong password, a role that may not log in, no such database, one closed to connections): the cause named, and what an operator does.

/** What a login refusal says: its SQLSTATE, the cause in words, what to change. */
export interface LoginRefusal {
  sqlstate: string
  cause: string
  advice: string
}

// The server answered (no outage) and a statement would not help: only a change outside the process
// (a password, a role, a database) mends it, so the service keeps trying. With password
// authentication a role that does not exist is refused as a wrong password (the server does not
// say which); 28000 is a role without LOGIN, or one pg_hba.conf does not admit.
const REFUSALS: Readonly<Record<string, Omit<LoginRefusal, 'sqlstate'>>> = {
  '28P01': {
    cause: 'the password was refused (or the role does not exist)',
    advice:
      "check the user and password in the database's URL (a rotated password: update the secret)",
  },
  '28000': {
    cause: 'the role may not log in',
    advice:
      "check the user in the database's URL: the role must exist and have LOGIN, and pg_hba.conf admit it",
  },
  '3D000': {
    cause: 'the database does not exist',
    advice: "check the database name in the database's URL, or create the database and migrate it",
  },
  // At connect, object_not_in_prerequisite_state is a database an operator closed: readiness left it
  // in the server's words alone, and an operator read `migrated: false` beside them as "migrate it".
  '55000': {
    cause: 'the database takes no connections (ALLOW_CONNECTIONS false)',
    advice:
      "allow connections again (ALTER DATABASE … ALLOW_CONNECTIONS true), or check the database name in the database's URL",
  },
}

/** The login refusal `e` is, or null. The server's message names the role or database, never the password. */
export function loginRefusal(e: unknown): LoginRefusal | null {
  const sqlstate = (e as { code?: unknown } | null)?.code
  if (typeof sqlstate !== 'string') return null
  const known = REFUSALS[sqlstate]
  return known ? { sqlstate, ...known } : null
}

/** `message` (a failed connect in the server's words), with the cause and what to check when `e` is a login refusal. */
export function withLoginAdvice(message: string, e: unknown): string {
  const login = loginRefusal(e)
  return login ? `${message}: SQLSTATE ${login.sqlstate}, ${login.cause}: ${login.advice}` : message
}
