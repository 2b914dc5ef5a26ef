/**
 * The one command layer. HTTP, the native protocol (WebSocket and TCP) and XMPP all
 * decode into these commands and deliver these events; domain code never sees a
 * wire format. Both unions are closed: an unknown `op` or `type` is a compile error.
 */
import type { Gender, Location, Preferences, SwipeKind } from '../storage/types.js';
import type { OrderState, OrderView } from '../store/contracts.js';

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
  | { op: 'deck.get'; limit?: number; cursor?: string }
  | { op: 'swipe'; targetId: string; kind: SwipeKind }
  | { op: 'matches.list' }
  | { op: 'unmatch'; userId: string }
  | { op: 'block'; userId: string }
  | { op: 'report'; userId: string; reason: string; details?: string }
  | { op: 'message.send'; to: string; body: string; clientId?: string }
  /** Confirms delivery to a device without telling the sender (XMPP stream-management acks, silent clients). */
  | { op: 'message.ack'; messageIds: string[] }
  /** One conversation (`with`) or all of them; newest first, or oldest first after the `after` cursor. */
  | { op: 'messages.history'; with?: string; before?: string; after?: string; limit?: number }
  | { op: 'receipt'; to: string; messageId: string; kind: 'delivered' | 'read' }
  | { op: 'typing'; to: string; state: 'composing' | 'paused' }
  | { op: 'presence.get'; userIds: string[] }
  | { op: 'presence.set'; show: PresenceShow; status?: string }
  /** Adds a contact: only an existing match in `matches` messaging, any user in `open` messaging. */
  | { op: 'contact.add'; userId: string }
  | { op: 'blocks.list' }
  /** Maps usernames (XMPP localparts) and user ids to each other. */
  | { op: 'users.resolve'; usernames?: string[]; userIds?: string[] };

export type PresenceShow = 'available' | 'away' | 'chat' | 'dnd' | 'xa';

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
  /** next: the cursor of the following page (null at the end); refreshed: the cursor given was for an old location or preferences, so the deck starts over */
  'deck.get': { cards: PublicProfile[]; next?: string | null; refreshed?: boolean };
  swipe: { matched: boolean; matchId?: string };
  'matches.list': { matches: MatchView[] };
  unmatch: { ok: true };
  block: { ok: true };
  report: { reportId: string };
  'message.send': { messageId: string; sentAt: number };
  'message.ack': { ok: true };
  'messages.history': { messages: MessageView[]; next: string | null };
  receipt: { ok: true };
  typing: { ok: true };
  'presence.get': { presence: PresenceView[] };
  'presence.set': { ok: true };
  'contact.add': { matchId: string };
  'blocks.list': { userIds: string[] };
  'users.resolve': { users: Array<{ userId: string; username: string }> };
}

export interface PresenceView {
  userId: string;
  online: boolean;
  /** null when the user opted out of presence */
  lastActiveAt: number | null;
  show?: PresenceShow;
  status?: string;
}

/** Events pushed to every open session of a user. */
export type KindredEvent =
  | { type: 'match'; matchId: string; peer: PublicProfile; at: number; superlike: boolean }
  | { type: 'unmatch'; matchId: string; userId: string }
  | { type: 'superlike'; from: PublicProfile }
  /** `offline`: stored while the user had no session, replayed now */
  | { type: 'message'; message: MessageView; offline?: boolean }
  | { type: 'receipt'; from: string; messageId: string; kind: 'delivered' | 'read' }
  | { type: 'typing'; from: string; state: 'composing' | 'paused' }
  | { type: 'presence'; userId: string; online: boolean; lastActiveAt: number | null; show?: PresenceShow; status?: string }
  /** the user blocked `userId` from another of their sessions (or over REST) */
  | { type: 'block'; userId: string }
  /** one of the user's book-store orders changed state (src/store/orders/) */
  | { type: 'order'; order: OrderView; from: OrderState | null }
  /** to one XMPP session only: a newer session bound the same resource (on any node), this one ends */
  | { type: 'replaced' };

export type EventType = KindredEvent['type'];
