/**
 * The native protocol over plain TCP (node:net) or TLS (node:tls): length-prefixed
 * msgpack frames. See docs/protocol.md.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { CommandGateway } from '../../domain/gateway.js';
import { KindredError } from '../../errors.js';
import { FrameDecoder, encodeLengthPrefixed } from './codec.js';
import { HeartbeatSweeper, NativeSession, type NativeLimits } from './session.js';
import { listenTcp } from '../listen.js';

export interface TcpListenerOptions {
  gateway: CommandGateway;
  limits: NativeLimits & { maxFrameBytes: number };
  tls: { certFile: string; keyFile: string } | null;
  onConnectionCount?: (delta: number) => void;
  onServerClose?: (kind: string) => void;
}

export class NativeTcpListener {
  private readonly server: net.Server;
  private readonly sweeper: HeartbeatSweeper;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly opts: TcpListenerOptions) {
    this.sweeper = new HeartbeatSweeper(Math.max(1000, (opts.limits.heartbeatSeconds * 1000) / 2));
    const onSocket = (socket: net.Socket) => this.accept(socket);
    this.server = opts.tls
      ? tls.createServer({ cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) }, onSocket)
      : net.createServer(onSocket);
    this.server.on('error', () => undefined);
  }

  listen(host: string, port: number): Promise<number> {
    return listenTcp(this.server, host, port);
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, tells every client the server is going away, closes them. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sweeper.all()) s.fail(new KindredError('UNAVAILABLE', 'server shutting down'));
      for (const socket of this.sockets) socket.end();
      setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, 1000).unref();
    });
    this.sweeper.stop();
  }

  private accept(socket: net.Socket): void {
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
