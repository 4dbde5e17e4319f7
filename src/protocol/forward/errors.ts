/**
 * Why a frame was refused; also the `reason` label of estuary_forward_bad_frames_total.
 * - malformed: not msgpack/JSON, or not the shape the forward protocol allows
 * - too_large: over max_message_size, or over max_decompressed_size once decompressed
 * - too_deep: nested deeper than max_nesting_depth
 * - unknown_mode: a well-formed message in no mode of the protocol (or an unknown option value)
 */
export type BadFrameReason = 'malformed' | 'too_large' | 'too_deep' | 'unknown_mode';

/** A frame the sender must fix: the connection it came on is closed, nothing from it is kept. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  readonly reason: BadFrameReason;

  constructor(reason: BadFrameReason, message: string) {
    super(message);
    this.reason = reason;
  }
}
