// What to do about a role lacking the service's rights on schema mailer (SQLSTATE 42501): one wording for check-config --connect and /readyz.

/**
 * Who runs what: the service's role cannot grant itself its rights, the schema's owner (migrate's
 * role) can. Follows a sentence naming what the role lacks; "it" is that role.
 */
export const GRANTS_ADVICE = "as the schema's owner, run the deploy guide's step 7 grants for it"
