// Whether a certificate is within its validity period at a time, and what Entra would refuse outside it.

/** Where `now` falls outside the certificate's validity period, what Entra would refuse; else null. */
export function certificateValidityProblem(
  now: number,
  notBefore: number,
  notAfter: number,
): { code: 'certificate_not_yet_valid' | 'certificate_expired'; message: string } | null {
  if (now < notBefore) {
    const at = new Date(notBefore).toISOString()
    return { code: 'certificate_not_yet_valid', message: `is not valid before ${at}` }
  }
  if (now >= notAfter) {
    return {
      code: 'certificate_expired',
      message: `expired at ${new Date(notAfter).toISOString()}`,
    }
  }
  return null
}
