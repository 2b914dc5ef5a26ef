/**
 * What a transport sees of Kindred: verify a token at the edge, run a command for a
 * principal, and open/close a live session that receives events. Transports hold no
 * other reference into the domain and never touch storage.
 */
import type { CommandResults, KindredEvent, PublicCommand, UserCommand } from './commands.js';

export type Transport = 'http' | 'ws' | 'tcp' | 'xmpp';

/** An authenticated caller, established from a signed token without a storage round trip. */
export interface Principal {
  userId: string;
  tokenId: string;
  expiresAt: number;
}

export interface SessionInfo {
  connId: string;
  transport: Transport;
  device: string;
}

/** Receives events for one live connection; returns false if the connection is gone. */
export type EventSink = (event: KindredEvent) => boolean;

export interface CommandGateway {
  /** register, login or auth: answers the command's result and the principal it established. */
  authenticate<C extends PublicCommand>(cmd: C): Promise<{ principal: Principal; result: CommandResults[C['op']] }>;
  /**
   * SASL SCRAM-SHA-1 / SCRAM-SHA-256 against the stored verifiers (RFC 5802, 7677).
   * `finish` throws BAD_CREDENTIALS for a wrong proof and BAD_REQUEST for malformed messages.
   */
  startScram(mechanism: 'SCRAM-SHA-1' | 'SCRAM-SHA-256', clientFirstMessage: string): Promise<{
    serverFirst: string;
    finish(clientFinalMessage: string): Promise<{ serverFinal: string; principal: Principal }>;
  }>;
  /** Edge check of a bearer token: signature, expiry, revocation. Synchronous and local. Throws KindredError. */
  verifyToken(token: string): Principal;
  /**
   * Runs a user command. Throws KindredError (see src/errors.ts) on any refusal.
   * `connId` names the live connection it came from, if any (so e.g. a sent message
   * is echoed to the user's other sessions but not back to this one).
   */
  execute<C extends UserCommand>(principal: Principal, cmd: C, connId?: string): Promise<CommandResults[C['op']]>;
  /** Registers a live connection with the user's actor; pending messages are pushed to `sink`. */
  openSession(principal: Principal, session: SessionInfo, sink: EventSink): Promise<void>;
  closeSession(principal: Principal, connId: string): void;
  /** A fresh connection id, unique across the cluster. */
  newConnId(): string;
}
