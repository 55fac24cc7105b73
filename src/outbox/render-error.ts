// Why a claimed row cannot become a mail: a code the row fails with permanently, and a message naming the field.
import { afterWords, EARLIER_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'

export class RenderError extends Error {
  constructor(
    readonly code:
      | 'template_error'
      | 'template_not_found'
      | 'invalid_message'
      | 'no_sender'
      | 'sender_not_allowed',
    message: string,
  ) {
    super(message)
  }
}

/** The row's message holds what enqueue refuses: `field` and `problem` as enqueue words them. */
export const invalidMessage = (field: string, problem: string) =>
  new RenderError('invalid_message', `${field} ${problem}`)

/** What a render failure's text ends with when it says the message was not sent. */
export const NOT_SENT = ': not sent'

/**
 * A render failure's text on a row whose earlier send was interrupted (its mark kept): that send
 * may have delivered the message, so the text says only that this attempt did not send it again.
 */
export const afterInterruptedSend = (message: string): string =>
  `${message.endsWith(NOT_SENT) ? message.slice(0, -NOT_SENT.length) : message}${NOT_SENT} again${afterWords(EARLIER_SEND_MAY_HAVE_DELIVERED)}`
