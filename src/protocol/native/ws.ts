/**
 * The native protocol over WebSocket on uWebSockets.js, at `/ws`: one binary
 * message = one msgpack frame. Text frames are refused (the protocol is binary).
 */
import type uWS from 'uWebSockets.js';
import type { CommandGateway } from '../../domain/gateway.js';
import { KindredError } from '../../errors.js';
import { encodeMessage } from './codec.js';
import { HeartbeatSweeper, NativeSession, type NativeLimits } from './session.js';

interface WsData {
  session?: NativeSession;
}

export interface WsRouteOptions {
  gateway: CommandGateway;
  limits: NativeLimits & { maxFrameBytes: number };
  onConnectionCount?: (delta: number) => void;
  onServerClose?: (kind: string) => void;
}

export function attachNativeWebSocket(app: uWS.TemplatedApp, opts: WsRouteOptions): { close(): void; readonly connections: number } {
  const { gateway, limits } = opts;
  const sweeper = new HeartbeatSweeper(Math.max(1000, (limits.heartbeatSeconds * 1000) / 2));
  const open = new Set<uWS.WebSocket<WsData>>();

  app.ws<WsData>('/ws', {
    compression: 0,
    // Frames up to 4x the limit reach us so we can answer with an error frame;
    // beyond that uWS drops the connection itself (clients see 1006 or 1009).
    maxPayloadLength: limits.maxFrameBytes * 4,
    maxBackpressure: limits.maxSendBufferBytes * 2,
    closeOnBackpressureLimit: true,
    idleTimeout: Math.max(8, Math.ceil((limits.heartbeatSeconds * 3) / 4) * 4),
    sendPingsAutomatically: true,
    open: (ws) => {
      open.add(ws);
      opts.onConnectionCount?.(1);
      let closed = false;
      const session = new NativeSession(gateway.newConnId(), 'ws', gateway, {
        send: (frame) => {
          if (closed) return 0;
          ws.send(encodeMessage(frame), true);
          return ws.getBufferedAmount();
        },
        close: (reason) => {
          if (closed) return;
          closed = true;
          ws.end(1008, reason.slice(0, 120));
        },
      }, limits, { onServerClose: opts.onServerClose });
      ws.getUserData().session = session;
      sweeper.add(session);
    },
    message: (ws, message, isBinary) => {
      const session = ws.getUserData().session!;
      if (!isBinary) {
        session.sendFrame({ error: new KindredError('BAD_REQUEST', 'the native protocol uses binary frames only').toJSON() });
        return;
      }
      if (message.byteLength > limits.maxFrameBytes) {
        session.rejectOversized(new Uint8Array(message), limits.maxFrameBytes);
        return;
      }
      // uWS reuses `message` after this callback returns: copy before decoding.
      session.onFrame(Buffer.from(new Uint8Array(message)));
    },
    close: (ws) => {
      open.delete(ws);
      opts.onConnectionCount?.(-1);
      const session = ws.getUserData().session;
      if (session) {
        sweeper.delete(session);
        session.onTransportClosed();
      }
    },
  });

  return {
    close() {
      sweeper.stop();
      for (const ws of [...open]) {
        try {
          ws.getUserData().session?.fail(new KindredError('UNAVAILABLE', 'server shutting down'));
        } catch {
          /* already closed */
        }
      }
    },
    get connections() {
      return open.size;
    },
  };
}
