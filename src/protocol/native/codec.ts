/**
 * Native protocol framing (docs/protocol.md). Over WebSocket one binary message is
 * one msgpack frame; over TCP each frame is a 4-byte big-endian length then that
 * many bytes of msgpack. The decoder is a push state machine: feed it any split of
 * the byte stream (even one byte at a time) and it yields whole frames.
 */
import { Packr } from 'msgpackr';
import { KindredError } from '../../errors.js';

export const nativePackr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' } as ConstructorParameters<typeof Packr>[0]);

export function encodeMessage(value: unknown): Buffer {
  return nativePackr.pack(value);
}

/** Decodes one msgpack message; throws BAD_REQUEST on anything that is not exactly one msgpack value. */
export function decodeMessage(bytes: Uint8Array): unknown {
  try {
    return nativePackr.unpack(bytes);
  } catch {
    throw new KindredError('BAD_REQUEST', 'frame is not valid msgpack');
  }
}

export function encodeLengthPrefixed(value: unknown): Buffer {
  const body = encodeMessage(value);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Returns the complete frame bodies now available; throws PAYLOAD_TOO_LARGE for an oversized length. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Buffer[] = [];
    while (this.buffered >= 4) {
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) throw new KindredError('PAYLOAD_TOO_LARGE', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      frames.push(whole.subarray(4));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    const first = this.peek(n);
    const out = first.subarray(0, n);
    const rest = first.subarray(n);
    if (rest.length) this.chunks[0] = rest;
    else this.chunks.shift();
    this.buffered -= n;
    return out;
  }
}
