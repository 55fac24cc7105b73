// When a Graph token request counts as slow, and the code the rows a slow request gives back carry.

/**
 * A token request Entra has not answered for this long, with no cached token serving, is slow: the
 * rows a worker claimed are given back for workers with a token rather than held for the request's
 * own 30 s deadline, and the worker claims none until it ends (sender.ts `unavailable`, drainer.ts).
 * Entra answers in well under a second; a real timer, as the request's own deadline is.
 */
export const TOKEN_SLOW_MS = 3_000
/** The code of a row given back for a slow token request (a `token_…` wait: settle-item.ts). */
export const TOKEN_SLOW_CODE = 'token_slow'
