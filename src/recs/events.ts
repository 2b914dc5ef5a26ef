/**
 * What keeps every node's candidate index and exclusion cache current: events on the bus,
 * published where profiles change, users become active, swipe or block (KindredService),
 * and received by every node (plain subscriptions, not a queue group), the publisher
 * included. Each is safe to apply twice except `swipe`'s like count, which counts once
 * per delivery (a swipe is published once, after the actor answered).
 */
import type { SwipeKind } from '../storage/types.js';
import type { CandidateRecord } from './index.js';

export const RECS_SUBJECT = 'kindred.recs.events';

export type RecsEvent =
  | { k: 'profile'; r: CandidateRecord }
  | { k: 'active'; u: string; at: number }
  | { k: 'swipe'; u: string; t: string; kind: SwipeKind }
  | { k: 'block'; u: string; t: string };
