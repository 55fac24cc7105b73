// Why a claimed row cannot become a mail: a code the row fails with permanently, and a message naming the field.

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
