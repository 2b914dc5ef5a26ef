/**
 * The native protocol over plain TCP (node:net) or TLS (node:tls, or kindred-tls-front when
 * `front` is given: src/protocol/tls-front/): length-prefixed msgpack frames. See docs/protocol.md.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { CommandGateway } from '../../domain/gateway.js';
import { KindredError } from '../../errors.js';
import { FrameDecoder, encodeLengthPrefixed } from './codec.js';
import { HeartbeatSweeper, NativeSession, type NativeLimits } from './session.js';
import { listenTcp } from '../listen.js';
import type { TlsFront } from '../tls-front/supervisor.js';
import type { ByteSocket } from '../tls-front/socket.js';

export interface TcpListenerOptions {
  gateway: CommandGateway;
  limits: NativeLimits & { maxFrameBytes: number };
  tls: { certFile: string; keyFile: string } | null;
  onConnectionCount?: (delta: number) => void;
  onServerClose?: (kind: string) => void;
  /** with `tls`: the TLS front terminates TLS and hands us plaintext connections */
  front?: TlsFront | null;
}

export class NativeTcpListener {
  private readonly server: net.Server | null;
  private frontListener: { close: () => void } | null = null;
  private readonly sweeper: HeartbeatSweeper;
  private readonly sockets = new Set<ByteSocket>();

  constructor(private readonly opts: TcpListenerOptions) {
    this.sweeper = new HeartbeatSweeper(Math.max(1000, (opts.limits.heartbeatSeconds * 1000) / 2));
    const onSocket = (socket: net.Socket) => this.accept(socket);
    this.server = opts.tls && opts.front
      ? null
      : opts.tls
        ? tls.createServer({ cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) }, onSocket)
        : net.createServer(onSocket);
    this.server?.on('error', () => undefined);
  }

  async listen(host: string, port: number): Promise<number> {
    if (this.server) return listenTcp(this.server, host, port);
    const { tls: files, front } = this.opts;
    const spec = { host, port, mode: 'tls' as const, cert: readFileSync(files!.certFile, 'utf8'), key: readFileSync(files!.keyFile, 'utf8') };
    const l = await front!.listen(spec, (socket) => this.accept(socket));
    this.frontListener = l;
    return l.port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, tells every client the server is going away, closes them. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.server) this.server.close(() => resolve());
      else {
        // like net.Server.close: done once every connection is gone
        this.frontListener?.close();
        const whenEmpty = () => (this.sockets.size === 0 ? resolve() : setTimeout(whenEmpty, 20));
        whenEmpty();
      }
      for (const s of this.sweeper.all()) s.fail(new KindredError('UNAVAILABLE', 'server shutting down'));
      for (const socket of this.sockets) socket.end();
      setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, 1000).unref();
    });
    this.sweeper.stop();
  }

  private accept(socket: ByteSocket): void {
    const { gateway, limits } = this.opts;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    this.sockets.add(socket);
    this.opts.onConnectionCount?.(1);
    const decoder = new FrameDecoder(limits.maxFrameBytes);
    let ended = false;
    const session = new NativeSession(gateway.newConnId(), 'tcp', gateway, {
      send: (frame) => {
        if (!ended) socket.write(encodeLengthPrefixed(frame));
        return socket.writableLength;
      },
      close: () => {
        if (ended) return;
        ended = true;
        socket.end();
        // A peer that never reads must not keep the socket forever.
        setTimeout(() => socket.destroy(), 2000).unref();
      },
    }, limits, { onServerClose: this.opts.onServerClose });
    this.sweeper.add(session);
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        // After a bad length the stream cannot be resynchronised: report and close.
        session.fail(err as KindredError);
        return;
      }
      for (const f of frames) session.onFrame(f);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      ended = true;
      this.sockets.delete(socket);
      this.sweeper.delete(session);
      this.opts.onConnectionCount?.(-1);
      session.onTransportClosed();
    });
  }
}
