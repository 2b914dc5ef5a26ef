/**
 * The one command layer. HTTP, the native protocol (WebSocket and TCP) and XMPP all
 * decode into these commands and deliver these events; domain code never sees a
 * wire format. Both unions are closed: an unknown `op` or `type` is a compile error.
 */
import type { Gender, Location, Preferences, SwipeKind } from '../storage/types.js';

export interface PublicProfile {
  userId: string;
  displayName: string;
  bio: string;
  age: number;
  gender: Gender;
  images: Array<{ imageId: string; url: string; position: number }>;
  /** km, rounded; present in decks */
  distanceKm?: number;
}

export interface MessageView {
  messageId: string;
  matchId: string;
  from: string;
  to: string;
  body: string;
  sentAt: number;
}

export interface MatchView {
  matchId: string;
  peer: PublicProfile;
  createdAt: number;
  ended: boolean;
}

export type ProfilePatch = Partial<{
  displayName: string;
  bio: string;
  birthDate: string;
  gender: Gender;
  preferences: Preferences;
  location: Location | null;
  showPresence: boolean;
}>;

/** Commands that need no session. */
export type PublicCommand =
  | { op: 'register'; username: string; password: string }
  | { op: 'login'; username: string; password: string }
  | { op: 'auth'; token: string };

/** Commands run on behalf of an authenticated user. */
export type UserCommand =
  | { op: 'logout' }
  | { op: 'ping' }
  | { op: 'profile.get'; userId?: string }
  | { op: 'profile.update'; patch: ProfilePatch }
  | { op: 'images.upload'; data: Uint8Array; contentType: string }
  | { op: 'images.list'; userId?: string }
  | { op: 'images.remove'; imageId: string }
  | { op: 'images.reorder'; imageIds: string[] }
  | { op: 'deck.get'; limit?: number }
  | { op: 'swipe'; targetId: string; kind: SwipeKind }
  | { op: 'matches.list' }
  | { op: 'unmatch'; userId: string }
  | { op: 'block'; userId: string }
  | { op: 'report'; userId: string; reason: string; details?: string }
  | { op: 'message.send'; to: string; body: string; clientId?: string }
  | { op: 'messages.history'; with: string; before?: string; limit?: number }
  | { op: 'receipt'; to: string; messageId: string; kind: 'delivered' | 'read' }
  | { op: 'typing'; to: string; state: 'composing' | 'paused' }
  | { op: 'presence.get'; userIds: string[] };

export type Command = PublicCommand | UserCommand;
export type CommandOp = Command['op'];

/** What each command answers. */
export interface CommandResults {
  register: { userId: string; token: string; expiresAt: number };
  login: { userId: string; token: string; expiresAt: number };
  auth: { userId: string; expiresAt: number };
  logout: { ok: true };
  ping: { now: number };
  'profile.get': { profile: PublicProfile & { preferences?: Preferences; location?: Location | null; birthDate?: string; showPresence?: boolean } };
  'profile.update': { ok: true };
  'images.upload': { image: { imageId: string; url: string; position: number; width: number; height: number; contentType: string } };
  'images.list': { images: Array<{ imageId: string; url: string; position: number; width: number; height: number; contentType: string }> };
  'images.remove': { ok: true };
  'images.reorder': { ok: true };
  'deck.get': { cards: PublicProfile[] };
  swipe: { matched: boolean; matchId?: string };
  'matches.list': { matches: MatchView[] };
  unmatch: { ok: true };
  block: { ok: true };
  report: { reportId: string };
  'message.send': { messageId: string; sentAt: number };
  'messages.history': { messages: MessageView[]; next: string | null };
  receipt: { ok: true };
  typing: { ok: true };
  'presence.get': { presence: PresenceView[] };
}

export interface PresenceView {
  userId: string;
  online: boolean;
  /** null when the user opted out of presence */
  lastActiveAt: number | null;
}

/** Events pushed to every open session of a user. */
export type KindredEvent =
  | { type: 'match'; matchId: string; peer: PublicProfile; at: number; superlike: boolean }
  | { type: 'unmatch'; matchId: string; userId: string }
  | { type: 'superlike'; from: PublicProfile }
  | { type: 'message'; message: MessageView }
  | { type: 'receipt'; from: string; messageId: string; kind: 'delivered' | 'read' }
  | { type: 'typing'; from: string; state: 'composing' | 'paused' }
  | { type: 'presence'; userId: string; online: boolean; lastActiveAt: number | null };

export type EventType = KindredEvent['type'];
