// The /v1 routes' OpenAPI security: the bearer token scheme /openapi.json declares (routes/docs.ts) and each /v1 operation requires.

/** The scheme's name in components.securitySchemes, which each operation's requirement refers to. */
export const BEARER_SCHEME = 'Bearer'

/** A /v1 operation's `security`: a bearer token (requireScope checks its scopes). */
export const BEARER_SECURITY = [{ [BEARER_SCHEME]: [] }]
