/** The shapes Tindr's API answers (docs/protocol.md, "Types used in results"). */
export type Gender = 'woman' | 'man' | 'nonbinary';
export const GENDERS: Gender[] = ['woman', 'man', 'nonbinary'];

export interface ImageRef {
  imageId: string;
  url: string;
  position: number;
}

export interface PublicProfile {
  userId: string;
  displayName: string;
  bio: string;
  age: number;
  gender: Gender;
  images: ImageRef[];
  distanceKm?: number;
}

export interface Preferences {
  ageMin: number;
  ageMax: number;
  genders: Gender[];
  maxDistanceKm: number;
}

export interface MyProfile extends PublicProfile {
  birthDate: string;
  preferences: Preferences;
  location: { lat: number; lon: number } | null;
  showPresence: boolean;
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
