/**
 * Profiles: validation of edits, and the public view other users see (no exact
 * location, no birth date: an age and a rounded distance instead).
 */
import { KindredError } from '../errors.js';
import { GENDERS, type Gender, type ImageStore, type Location, type Preferences, type Profile, type ProfileStore } from '../storage/types.js';
import type { ProfilePatch, PublicProfile } from './commands.js';

export const DEFAULT_PREFERENCES: Preferences = { ageMin: 18, ageMax: 99, genders: ['woman', 'man', 'nonbinary'], maxDistanceKm: 100 };

export function emptyProfile(userId: string, displayName: string, now: number): Profile {
  return {
    userId,
    displayName,
    bio: '',
    birthDate: '2000-01-01',
    gender: 'nonbinary',
    preferences: { ...DEFAULT_PREFERENCES },
    location: null,
    showPresence: true,
    lastActiveAt: now,
    updatedAt: now,
  };
}

export function ageOn(birthDate: string, now: number): number {
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  const today = new Date(now);
  let age = today.getUTCFullYear() - y;
  const beforeBirthday = today.getUTCMonth() + 1 < m || (today.getUTCMonth() + 1 === m && today.getUTCDate() < d);
  if (beforeBirthday) age--;
  return age;
}

/** The birth date of someone who turns `age` today, shifted by `years`. */
export function birthDateForAge(age: number, now: number, endOfRange: boolean): string {
  const t = new Date(now);
  const year = t.getUTCFullYear() - age - (endOfRange ? 1 : 0);
  const date = new Date(Date.UTC(year, t.getUTCMonth(), t.getUTCDate() + (endOfRange ? 1 : 0)));
  return date.toISOString().slice(0, 10);
}

export function distanceKm(a: Location, b: Location): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

function fail(field: string, why: string): never {
  throw new KindredError('INVALID_ARGUMENT', `${field}: ${why}`);
}

function isGender(v: unknown): v is Gender {
  return typeof v === 'string' && (GENDERS as readonly string[]).includes(v);
}

function checkText(field: string, v: unknown, min: number, max: number): string {
  if (typeof v !== 'string') fail(field, 'must be a string');
  const s = v.trim();
  if (s.length < min || s.length > max) fail(field, `must be ${min} to ${max} characters`);
  return s;
}

function checkNumber(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(field, `must be a number from ${min} to ${max}`);
  return v;
}

/** Validates an untrusted patch and applies it; unknown fields are refused. */
export function applyPatch(profile: Profile, patch: unknown, now: number): Profile {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) fail('patch', 'must be an object');
  const next: Profile = { ...profile, preferences: { ...profile.preferences }, updatedAt: now };
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    switch (key as keyof ProfilePatch) {
      case 'displayName':
        next.displayName = checkText('displayName', value, 1, 64);
        break;
      case 'bio':
        next.bio = checkText('bio', value, 0, 500);
        break;
      case 'birthDate': {
        if (typeof value !== 'string' || !DATE_RE.test(value) || Number.isNaN(Date.parse(value))) fail('birthDate', 'must be a date YYYY-MM-DD');
        const age = ageOn(value, now);
        if (age < 18 || age > 120) fail('birthDate', 'you must be at least 18');
        next.birthDate = value;
        break;
      }
      case 'gender':
        if (!isGender(value)) fail('gender', `must be one of ${GENDERS.join(', ')}`);
        next.gender = value;
        break;
      case 'showPresence':
        if (typeof value !== 'boolean') fail('showPresence', 'must be a boolean');
        next.showPresence = value;
        break;
      case 'location':
        if (value === null) next.location = null;
        else {
          if (typeof value !== 'object') fail('location', 'must be {lat, lon} or null');
          const v = value as Record<string, unknown>;
          next.location = { lat: checkNumber('location.lat', v.lat, -90, 90), lon: checkNumber('location.lon', v.lon, -180, 180) };
        }
        break;
      case 'preferences': {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('preferences', 'must be an object');
        const v = value as Record<string, unknown>;
        const p = next.preferences;
        if ('ageMin' in v) p.ageMin = checkNumber('preferences.ageMin', v.ageMin, 18, 120);
        if ('ageMax' in v) p.ageMax = checkNumber('preferences.ageMax', v.ageMax, 18, 120);
        if ('maxDistanceKm' in v) p.maxDistanceKm = checkNumber('preferences.maxDistanceKm', v.maxDistanceKm, 1, 20000);
        if ('genders' in v) {
          if (!Array.isArray(v.genders) || v.genders.length === 0 || !v.genders.every(isGender)) {
            fail('preferences.genders', `must be a non-empty list of ${GENDERS.join(', ')}`);
          }
          p.genders = [...new Set(v.genders as Gender[])];
        }
        for (const k of Object.keys(v)) if (!['ageMin', 'ageMax', 'maxDistanceKm', 'genders'].includes(k)) fail(`preferences.${k}`, 'unknown field');
        if (p.ageMin > p.ageMax) fail('preferences', 'ageMin must not exceed ageMax');
        break;
      }
      default:
        fail(key, 'unknown field');
    }
  }
  return next;
}

export class ProfileViews {
  constructor(
    private readonly profiles: ProfileStore,
    private readonly images: ImageStore,
  ) {}

  toPublic(profile: Profile, images: ReadonlyArray<{ imageId: string; url: string; position: number }>, now: number, from?: Location | null): PublicProfile {
    const view: PublicProfile = {
      userId: profile.userId,
      displayName: profile.displayName,
      bio: profile.bio,
      age: ageOn(profile.birthDate, now),
      gender: profile.gender,
      images: images.map((i) => ({ imageId: i.imageId, url: i.url, position: i.position })),
    };
    if (from && profile.location) view.distanceKm = Math.round(distanceKm(from, profile.location));
    return view;
  }

  async publicView(userId: string, now: number, from?: Location | null): Promise<PublicProfile | undefined> {
    const [profile, images] = await Promise.all([this.profiles.get(userId), this.images.list(userId)]);
    return profile && this.toPublic(profile, images, now, from);
  }
}
