// What an e-mail address must look like: the rule of mailer.is_email_address (sql/0001), at enqueue and at send.

/** The pattern alone; a template's rendered address is held to it. */
export const EMAIL_ADDRESS =
  /^[^@\s<>(),;:"[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/

/** mailer.is_email_address: at most 320 characters, and the pattern. */
export const isEmailAddress = (a: string): boolean => a.length <= 320 && EMAIL_ADDRESS.test(a)
