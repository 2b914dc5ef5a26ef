/**
 * FrontLink: Kindred's end of the one socket to kindred-tls-front. It turns frames into
 * FrontSocket events and FrontSocket calls into frames; frames written in one turn of the
 * event loop leave in one write.
 */
import type { Duplex } from 'node:stream';
import { FrameSplitter, FromFront, ToFront, encodeFrame } from './frames.js';
import { FrontSocket, type FrontSocketLink } from './socket.js';

export interface ListenSpec {
  host: string;
  port: number;
  /** `tls`: TLS from the first byte; `starttls`: plaintext until FrontSocket.startTls() */
  mode: 'tls' | 'starttls';
  cert: string;
  key: string;
  alpn?: string[];
  handshakeTimeoutMs?: number;
}

interface Listening {
  resolve: (port: number) => void;
  reject: (err: Error) => void;
}

export class FrontLink implements FrontSocketLink {
  private readonly splitter = new FrameSplitter();
  private readonly sockets = new Map<number, FrontSocket>();
  private readonly onConnection = new Map<number, (socket: FrontSocket) => void>();
  private readonly pendingListens = new Map<number, Listening>();
  private corked = false;
  private closed = false;
  /** resolves with the front's HELLO (version, pid) */
  readonly hello: Promise<{ version: string; pid: number }>;
  private helloResolve!: (h: { version: string; pid: number }) => void;
  private helloReject!: (err: Error) => void;

  constructor(
    private readonly stream: Duplex,
    private readonly onProtocolError: (err: Error) => void,
  ) {
    this.hello = new Promise((resolve, reject) => {
      this.helloResolve = resolve;
      this.helloReject = reject;
    });
    this.hello.catch(() => undefined);
    stream.on('data', (chunk: Buffer) => {
      try {
        this.splitter.push(chunk, (type, id, payload) => this.onFrame(type, id, payload));
      } catch (err) {
        this.onProtocolError(err as Error);
      }
    });
    stream.on('error', () => undefined);
    stream.on('close', () => this.shutdown(new Error('the TLS front went away')));
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Asks the front to listen; resolves with the port it bound. */
  listen(listenerId: number, spec: ListenSpec, onConnection: (socket: FrontSocket) => void): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the TLS front is not running'));
    this.onConnection.set(listenerId, onConnection);
    return new Promise((resolve, reject) => {
      this.pendingListens.set(listenerId, { resolve, reject });
      this.write(encodeFrame(ToFront.Listen, listenerId, JSON.stringify(spec)));
    });
  }

  unlisten(listenerId: number): void {
    this.onConnection.delete(listenerId);
    this.write(encodeFrame(ToFront.Unlisten, listenerId));
  }

  /** Every connection is reported closed; the stream is closed (the front then exits). */
  shutdown(err: Error = new Error('closed')): void {
    if (this.closed) return;
    this.closed = true;
    this.helloReject(err);
    for (const p of this.pendingListens.values()) p.reject(err);
    this.pendingListens.clear();
    const sockets = [...this.sockets.values()];
    this.sockets.clear();
    for (const s of sockets) s.onClosed();
    this.stream.destroy();
  }

  // ── FrontSocketLink ──
  data(id: number, data: string | Uint8Array): void {
    this.write(encodeFrame(ToFront.Data, id, data));
  }
  end(id: number): void {
    this.write(encodeFrame(ToFront.End, id));
  }
  abort(id: number): void {
    this.write(encodeFrame(ToFront.Abort, id));
  }
  startTls(id: number): void {
    this.write(encodeFrame(ToFront.StartTls, id));
  }
  ackRead(id: number, bytes: number): void {
    const b = encodeFrame(ToFront.AckRead, id, new Uint8Array(4));
    b.writeUInt32BE(bytes, 9);
    this.write(b);
  }
  pauseRead(id: number): void {
    this.write(encodeFrame(ToFront.PauseRead, id));
  }
  resumeRead(id: number): void {
    this.write(encodeFrame(ToFront.ResumeRead, id));
  }

  /**
   * Frames are held until the event loop has run everything it had to do this turn
   * (setImmediate, not nextTick: replies written from promise continuations, and those of
   * every client whose bytes came in the same read, leave together). Each write to the link
   * is a system call here and a wake-up of the front, which at thousands of logins a second
   * cost more than the frames themselves.
   */
  private write(frame: Buffer): void {
    if (this.closed) return;
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      setImmediate(this.flush);
    }
    this.stream.write(frame);
  }

  private readonly flush = (): void => {
    this.corked = false;
    this.stream.uncork();
  };

  private onFrame(type: number, id: number, payload: Buffer): void {
    switch (type) {
      case FromFront.Data:
        // a copy: the payload is a view into the link's read buffer, shared by many clients
        this.sockets.get(id)?.onData(Buffer.from(payload));
        return;
      case FromFront.Open: {
        const listenerId = payload.readUInt32BE(0);
        const socket = new FrontSocket(id, this, payload.toString('latin1', 6), payload.readUInt16BE(4));
        const accept = this.onConnection.get(listenerId);
        if (!accept) {
          // the listener was closed meanwhile
          this.abort(id);
          return;
        }
        this.sockets.set(id, socket);
        accept(socket);
        return;
      }
      case FromFront.Closed: {
        const socket = this.sockets.get(id);
        this.sockets.delete(id);
        socket?.onClosed();
        return;
      }
      case FromFront.TlsUp:
        this.sockets.get(id)?.onTlsUp();
        return;
      case FromFront.Ack:
        this.sockets.get(id)?.onAck(payload.readUInt32BE(0));
        return;
      case FromFront.Listening: {
        const p = this.pendingListens.get(id);
        this.pendingListens.delete(id);
        const msg = JSON.parse(payload.toString('utf8')) as { port?: number; error?: string };
        if (msg.error !== undefined) {
          this.onConnection.delete(id);
          p?.reject(new Error(`TLS front could not listen: ${msg.error}`));
        } else p?.resolve(msg.port!);
        return;
      }
      case FromFront.Hello:
        this.helloResolve(JSON.parse(payload.toString('utf8')) as { version: string; pid: number });
        return;
      default:
        this.onProtocolError(new Error(`tls front: unknown frame type ${type}`));
    }
  }
}
