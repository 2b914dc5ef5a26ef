/**
 * The link protocol with kindred-tls-front (native/tls-front/frames.go is the other half; the
 * two lists must match). One stream socket carries every client connection; a frame is
 * `u32 length (of what follows) | u8 type | u32 id | payload`, big-endian.
 */

export const HEADER_BYTES = 9;

/** Kindred → front */
export enum ToFront {
  Listen = 1,
  Unlisten = 2,
  Data = 3,
  End = 4,
  Abort = 5,
  StartTls = 6,
  PauseRead = 7,
  ResumeRead = 8,
  /** payload u32: that many more bytes of the client's data were consumed here */
  AckRead = 9,
}

/** front → Kindred */
export enum FromFront {
  Hello = 20,
  Listening = 21,
  Open = 22,
  Data = 23,
  Closed = 24,
  TlsUp = 25,
  /** payload u32: that many more bytes we sent for the client were written to it */
  Ack = 26,
}

/**
 * Flow control, both ways. Towards a client: at most this many bytes sent to the front and not
 * yet acknowledged (Ack); beyond it FrontSocket holds data (and counts it as buffered, so a
 * client that does not read is dropped by the session's send-buffer limit): the front queues at
 * most this plus one frame per client. From a client: the front reads at most this many bytes
 * ahead of what Kindred acknowledged (AckRead, sent every half window), so a flood is not read
 * into memory faster than the transport can refuse it. Must match `window` in
 * native/tls-front/frames.go.
 */
export const WINDOW_BYTES = 64 * 1024;

/** One frame: the header, with the payload copied in (one buffer, one write). */
export function encodeFrame(type: number, id: number, payload?: string | Uint8Array): Buffer {
  const len = payload === undefined ? 0 : typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  const b = Buffer.allocUnsafe(HEADER_BYTES + len);
  b.writeUInt32BE(5 + len, 0);
  b[4] = type;
  b.writeUInt32BE(id, 5);
  if (typeof payload === 'string') b.write(payload, HEADER_BYTES, 'utf8');
  else if (payload) b.set(payload, HEADER_BYTES);
  return b;
}

export interface Frame {
  type: number;
  id: number;
  payload: Buffer;
}

/**
 * Splits the link's byte stream into frames. A payload is a view into the chunk it arrived in
 * (the caller copies what it keeps), except for frames that span chunks.
 */
export class FrameSplitter {
  private pending: Buffer | null = null;

  push(chunk: Buffer, onFrame: (type: number, id: number, payload: Buffer) => void): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let off = 0;
    while (buf.length - off >= HEADER_BYTES) {
      const len = buf.readUInt32BE(off);
      if (len < 5) throw new Error(`tls front: bad frame length ${len}`);
      const end = off + 4 + len;
      if (end > buf.length) break;
      onFrame(buf[off + 4]!, buf.readUInt32BE(off + 5), buf.subarray(off + HEADER_BYTES, end));
      off = end;
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }
}
