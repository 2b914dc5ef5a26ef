/**
 * Storage interfaces: one small interface per kind of data, shaped query-first the
 * way Cassandra tables are (see docs/architecture.md#data-model). Every backend
 * (embedded SQLite + local files; cluster Cassandra + S3) passes the same contract
 * suite in test/storage/contract.ts. Domain code sees only these types.
 *
 * Conventions: ids are time-ordered UUIDv7 strings (src/ids.ts); times are epoch ms.
 */

export type Gender = 'woman' | 'man' | 'nonbinary';
export const GENDERS: readonly Gender[] = ['woman', 'man', 'nonbinary'];
export type SwipeKind = 'like' | 'pass' | 'superlike';

export interface ScramVerifier {
  /** base64 salt */
  salt: string;
  iterations: number;
  /** base64 StoredKey = H(ClientKey) */
  storedKey: string;
  /** base64 ServerKey = HMAC(SaltedPassword, "Server Key") */
  serverKey: string;
}

export interface Account {
  userId: string;
  username: string;
  /** scrypt PHC-style string: scrypt$N$r$p$salt$hash */
  passwordHash: string;
  scramSha1: ScramVerifier;
  scramSha256: ScramVerifier;
  createdAt: number;
}

export interface AccountStore {
  /**
   * Creates the account; throws KindredError('CONFLICT') when the username is taken.
   * Usernames are case-insensitive: stored lowercase, and byUsername matches any case.
   */
  create(account: Account): Promise<void>;
  byUsername(username: string): Promise<Account | undefined>;
  byId(userId: string): Promise<Account | undefined>;
}

/** Revoked access tokens (logout). Rows may be dropped once the token would have expired anyway. */
export interface RevocationStore {
  revoke(tokenId: string, expiresAt: number): Promise<void>;
  /** Every revocation that has not expired by `now`: loaded into memory at the edge on start. */
  active(now: number): Promise<Array<{ tokenId: string; expiresAt: number }>>;
}

export interface Preferences {
  ageMin: number;
  ageMax: number;
  genders: Gender[];
  maxDistanceKm: number;
}

export interface Location {
  lat: number;
  lon: number;
}

export interface Profile {
  userId: string;
  displayName: string;
  bio: string;
  /** YYYY-MM-DD */
  birthDate: string;
  gender: Gender;
  preferences: Preferences;
  location: Location | null;
  /** Presence opt-out: when false, matches never see online / last active. */
  showPresence: boolean;
  lastActiveAt: number;
  updatedAt: number;
}

export interface CandidateQuery {
  /** the seeker, excluded from results */
  userId: string;
  near: Location;
  radiusKm: number;
  /** genders the seeker wants */
  genders: Gender[];
  /** birth dates in [bornAfter, bornBefore] (YYYY-MM-DD), from the seeker's age range */
  bornOnOrAfter: string;
  bornOnOrBefore: string;
  /** the seeker's own gender and age, which the candidate's preferences must accept */
  seekerGender: Gender;
  seekerAge: number;
  limit: number;
}

export interface ProfileStore {
  put(profile: Profile): Promise<void>;
  get(userId: string): Promise<Profile | undefined>;
  getMany(userIds: string[]): Promise<Profile[]>;
  /** Profiles near `near` that fit both sides' preferences; not yet excluding swipes/blocks. */
  candidates(query: CandidateQuery): Promise<Profile[]>;
  touchLastActive(userId: string, at: number): Promise<void>;
  /** Every profile, in pages of up to `pageSize` (the deck index is built from it at start). */
  scanAll(pageSize: number): AsyncIterable<Profile[]>;
}

/** The seed's imageDB row `profile_id | image_id | URL`, plus what the server checked. */
export interface ImageRecord {
  profileId: string;
  imageId: string;
  url: string;
  position: number;
  contentType: string;
  width: number;
  height: number;
  bytes: number;
  createdAt: number;
}

export interface ImageStore {
  /**
   * Adds the row only while the profile holds fewer than `max` images; returns false at the limit.
   * The row goes last (its stored position is the count before the add; `image.position` is
   * ignored) and positions stay dense 0..n-1, also after `remove`. Re-adding the same imageId
   * for the same profile is a no-op that returns true.
   */
  addIfUnder(image: ImageRecord, max: number): Promise<boolean>;
  list(profileId: string): Promise<ImageRecord[]>;
  get(imageId: string): Promise<ImageRecord | undefined>;
  remove(profileId: string, imageId: string): Promise<boolean>;
  /** Sets positions 0..n-1 in the given order; `imageIds` must be exactly the profile's images. */
  reorder(profileId: string, imageIds: string[]): Promise<void>;
}

/** Image and ebook bytes: the local file system embedded, S3 in a cluster. */
export interface BlobStore {
  put(key: string, data: Buffer, contentType: string): Promise<void>;
  get(key: string): Promise<{ data: Buffer; contentType: string } | undefined>;
  remove(key: string): Promise<void>;
}

export interface Swipe {
  swiperId: string;
  targetId: string;
  kind: SwipeKind;
  at: number;
}

export interface SwipeStore {
  /**
   * Records a swipe once: a repeat of the same (swiper, target) keeps the first
   * and returns `{ first: false, existing }`, so retries are idempotent.
   */
  record(swipe: Swipe): Promise<{ first: boolean; existing?: Swipe }>;
  /** The like or super like `swiperId` gave `targetId`, if any (the likes_received table). */
  likeFrom(swiperId: string, targetId: string): Promise<Swipe | undefined>;
  /** Which of `targetIds` the swiper has already swiped. */
  swipedAmong(swiperId: string, targetIds: string[]): Promise<Set<string>>;
  /** Everyone the swiper has swiped (the deck's exclusions; one partition). */
  swipedBy(swiperId: string): Promise<string[]>;
  /** Who super liked `targetId` (the deck's super-like boost; one partition). */
  superLikersOf(targetId: string): Promise<string[]>;
  /** Likes and super likes received per user, in pages (the deck index's desirability, built at start). */
  scanLikeCounts(pageSize: number): AsyncIterable<Array<{ userId: string; likes: number }>>;
}

export interface Match {
  matchId: string;
  /** the two user ids, sorted */
  users: [string, string];
  createdAt: number;
  endedAt: number | null;
  endedBy: string | null;
  /** the first history bucket (src/ids.ts monthBucket), so paging knows where to stop */
  firstBucket: number;
}

export interface MatchStore {
  /**
   * Creates the match for this pair unless one exists: exactly once per pair even
   * under concurrent calls (a transaction embedded, a lightweight transaction on Cassandra).
   */
  createIfAbsent(match: Match): Promise<{ created: boolean; match: Match }>;
  get(matchId: string): Promise<Match | undefined>;
  byPair(a: string, b: string): Promise<Match | undefined>;
  /** Every match of the user, ended ones included, newest first. */
  listForUser(userId: string): Promise<Match[]>;
  /**
   * Marks the match ended (unmatch or block); returns the updated match, undefined if unknown.
   * The first end wins: ending an ended match returns it unchanged.
   */
  end(matchId: string, by: string, at: number): Promise<Match | undefined>;
}

export interface BlockStore {
  block(blockerId: string, blockedId: string, at: number): Promise<void>;
  /** Everyone the user blocked or was blocked by. */
  blockedEitherWay(userId: string): Promise<Set<string>>;
  /** Only the users this user blocked (their own block list). */
  blockedBy(blockerId: string): Promise<string[]>;
}

export interface Report {
  reportId: string;
  reporterId: string;
  reportedId: string;
  reason: string;
  details: string;
  createdAt: number;
}

export interface ReportStore {
  add(report: Report): Promise<void>;
  listForReported(reportedId: string): Promise<Report[]>;
}

export interface ChatMessage {
  messageId: string;
  matchId: string;
  senderId: string;
  recipientId: string;
  body: string;
  sentAt: number;
  /** monthBucket(sentAt): the history partition */
  bucket: number;
}

export interface MessageStore {
  /**
   * Makes the message durable and queues it for the recipient's delivery. Resolves
   * only once the write is durable (group commit: many appends share one sync).
   */
  append(message: ChatMessage): Promise<void>;
  /** Newest first; `before` is an exclusive message-id cursor; stops at the match's firstBucket. */
  page(matchId: string, firstBucket: number, opts: { before?: string; limit: number }): Promise<ChatMessage[]>;
  /** One message of a conversation by id (its bucket comes from the id's time), or undefined. */
  get(matchId: string, messageId: string): Promise<ChatMessage | undefined>;
  /** Oldest first, strictly after the `after` cursor (forward paging, e.g. XMPP MAM catch-up). */
  pageAfter(matchId: string, firstBucket: number, opts: { after: string; limit: number }): Promise<ChatMessage[]>;
  /** Messages not yet acknowledged as delivered by the recipient, oldest first. */
  pendingFor(recipientId: string, limit: number): Promise<ChatMessage[]>;
  markDelivered(recipientId: string, messageIds: string[]): Promise<void>;
  /** Moves forward only: an id older than the stored marker is ignored. */
  setReadMarker(matchId: string, userId: string, messageId: string): Promise<void>;
  readMarker(matchId: string, userId: string): Promise<string | undefined>;
}

export interface Storage {
  accounts: AccountStore;
  revocations: RevocationStore;
  profiles: ProfileStore;
  images: ImageStore;
  blobs: BlobStore;
  swipes: SwipeStore;
  matches: MatchStore;
  blocks: BlockStore;
  reports: ReportStore;
  messages: MessageStore;
  /** Flushes pending group commits and closes handles. */
  close(): Promise<void>;
}
