/** snappyjs ships no types: the two functions it exports (Snappy block format, no framing). */
declare module 'snappyjs' {
  interface Snappy {
    /** Returns the same kind it is given (a Buffer for a Buffer). */
    compress<T extends Uint8Array | ArrayBuffer>(input: T): T;
    uncompress<T extends Uint8Array | ArrayBuffer>(input: T, maxLength?: number): T;
  }
  const snappy: Snappy;
  export = snappy;
}
