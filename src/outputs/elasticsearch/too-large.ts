/** A bulk request the cluster refused as too large (413): split it, or reject a lone document. */
export class TooLargeError extends Error {
  override readonly name = 'TooLargeError';
}
