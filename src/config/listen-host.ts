// HOST, the address the HTTP server listens on: an IP address written in full, or a host name.
import { isIP } from 'node:net'
import { z } from 'zod'

// RFC 1123 labels: anything else (an underscore, a URL, a port) fails only at bind, as "port in use?".
const HOSTNAME =
  /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i
// A last label that is a number (decimal, or 0x hex): no host name has one (RFC 3696 2), and the
// system's resolver reads such a name as an address of the old forms (inet_aton): 0 as 0.0.0.0,
// 127.1 and 2130706433 as 127.0.0.1; 1.5 and 9999999999 failed at bind.
const NUMBER_LAST = /(^|\.)(\d+|0x[0-9a-f]*)\.?$/i

const isAddress = (h: string) => isIP(h.replace(/^\[(.*)\]$/, '$1')) !== 0

export const listenHost = z
  .string()
  .refine(
    (h) => isAddress(h) || HOSTNAME.test(h),
    // One problem a value: the next rule is about a name this one takes.
    {
      message:
        'must be an IP address (0.0.0.0, ::) or a host name (letters, digits, hyphens, dots)',
      abort: true,
    },
  )
  .refine(
    (h) => isAddress(h) || !NUMBER_LAST.test(h),
    'must be an IP address written in full (0.0.0.0, 127.0.0.1, ::) or a host name whose last part is not a number: the system reads 127.1 or 2130706433 as a shortened address',
  )
