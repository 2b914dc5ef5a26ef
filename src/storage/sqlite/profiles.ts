import type { CandidateQuery, Gender, Preferences, Profile, ProfileStore } from '../types.js';
import { jsonList, read, write, type SqliteContext } from './common.js';
import { boundingBox, haversineKm } from './geo.js';

/** Bits for profiles.pref_genders_mask. */
export const GENDER_BIT: Record<Gender, number> = { woman: 1, man: 2, nonbinary: 4 };

function gendersMask(genders: readonly Gender[]): number {
  let mask = 0;
  for (const g of genders) mask |= GENDER_BIT[g] ?? 0;
  return mask;
}

interface ProfileRow {
  user_id: string;
  display_name: string;
  bio: string;
  birth_date: string;
  gender: Gender;
  preferences: string;
  pref_age_min: number;
  pref_age_max: number;
  pref_genders_mask: number;
  pref_max_distance_km: number;
  lat: number | null;
  lon: number | null;
  show_presence: number;
  last_active_at: number;
  updated_at: number;
}

function toRow(p: Profile): ProfileRow {
  return {
    user_id: p.userId,
    display_name: p.displayName,
    bio: p.bio,
    birth_date: p.birthDate,
    gender: p.gender,
    preferences: JSON.stringify(p.preferences),
    pref_age_min: p.preferences.ageMin,
    pref_age_max: p.preferences.ageMax,
    pref_genders_mask: gendersMask(p.preferences.genders),
    pref_max_distance_km: p.preferences.maxDistanceKm,
    lat: p.location ? p.location.lat : null,
    lon: p.location ? p.location.lon : null,
    show_presence: p.showPresence ? 1 : 0,
    last_active_at: p.lastActiveAt,
    updated_at: p.updatedAt,
  };
}

function toProfile(r: ProfileRow): Profile {
  return {
    userId: r.user_id,
    displayName: r.display_name,
    bio: r.bio,
    birthDate: r.birth_date,
    gender: r.gender,
    preferences: JSON.parse(r.preferences) as Preferences,
    location: r.lat === null || r.lon === null ? null : { lat: r.lat, lon: r.lon },
    showPresence: r.show_presence === 1,
    lastActiveAt: r.last_active_at,
    updatedAt: r.updated_at,
  };
}

export class SqliteProfileStore implements ProfileStore {
  private readonly upsert;
  private readonly getStmt;
  private readonly getManyStmt;
  private readonly touchStmt;
  private readonly candidatesStmt;
  private readonly scanStmt;

  constructor(private readonly ctx: SqliteContext) {
    const { db } = ctx;
    db.function('kindred_distance_km', { deterministic: true }, (lat1, lon1, lat2, lon2) =>
      haversineKm(lat1 as number, lon1 as number, lat2 as number, lon2 as number),
    );
    this.upsert = db.prepare(`INSERT INTO profiles (user_id, display_name, bio, birth_date, gender, preferences,
        pref_age_min, pref_age_max, pref_genders_mask, pref_max_distance_km, lat, lon, show_presence, last_active_at, updated_at)
      VALUES (@user_id, @display_name, @bio, @birth_date, @gender, @preferences,
        @pref_age_min, @pref_age_max, @pref_genders_mask, @pref_max_distance_km, @lat, @lon, @show_presence, @last_active_at, @updated_at)
      ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name, bio = excluded.bio,
        birth_date = excluded.birth_date, gender = excluded.gender, preferences = excluded.preferences,
        pref_age_min = excluded.pref_age_min, pref_age_max = excluded.pref_age_max,
        pref_genders_mask = excluded.pref_genders_mask, pref_max_distance_km = excluded.pref_max_distance_km,
        lat = excluded.lat, lon = excluded.lon, show_presence = excluded.show_presence,
        last_active_at = excluded.last_active_at, updated_at = excluded.updated_at`);
    this.getStmt = db.prepare('SELECT * FROM profiles WHERE user_id = ?');
    this.getManyStmt = db.prepare('SELECT * FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))');
    this.scanStmt = db.prepare('SELECT * FROM profiles WHERE user_id > ? ORDER BY user_id LIMIT ?');
    this.touchStmt = db.prepare('UPDATE profiles SET last_active_at = max(last_active_at, ?) WHERE user_id = ?');
    // Bounding box on the (lat, lon) index first, then both sides' preferences and the exact distance.
    // Everything is a column test except the distance, computed by the registered haversine function.
    this.candidatesStmt = db.prepare(`SELECT * FROM (
        SELECT p.*, kindred_distance_km(@lat, @lon, p.lat, p.lon) AS distance_km
        FROM profiles p
        WHERE p.lat BETWEEN @minLat AND @maxLat
          AND (p.lon BETWEEN @lon1a AND @lon1b OR p.lon BETWEEN @lon2a AND @lon2b)
          AND p.user_id <> @userId
          AND p.gender IN (@g1, @g2, @g3)
          AND p.birth_date BETWEEN @bornOnOrAfter AND @bornOnOrBefore
          AND (p.pref_genders_mask & @seekerGenderBit) <> 0
          AND p.pref_age_min <= @seekerAge AND p.pref_age_max >= @seekerAge
      )
      WHERE distance_km <= @radiusKm AND distance_km <= pref_max_distance_km
      ORDER BY distance_km, user_id
      LIMIT @limit`);
  }

  put(profile: Profile): Promise<void> {
    const row = toRow(profile);
    return write(this.ctx, () => {
      this.upsert.run(row);
    });
  }

  get(userId: string): Promise<Profile | undefined> {
    return read(() => {
      const r = this.getStmt.get(userId) as ProfileRow | undefined;
      return r && toProfile(r);
    });
  }

  getMany(userIds: string[]): Promise<Profile[]> {
    if (userIds.length === 0) return Promise.resolve([]);
    return read(() => {
      const rows = this.getManyStmt.all(jsonList(userIds)) as ProfileRow[];
      const byId = new Map(rows.map((r) => [r.user_id, r]));
      const out: Profile[] = [];
      const seen = new Set<string>();
      // In the order asked for; unknown ids are skipped, repeats returned once.
      for (const id of userIds) {
        const r = byId.get(id);
        if (r && !seen.has(id)) {
          seen.add(id);
          out.push(toProfile(r));
        }
      }
      return out;
    });
  }

  candidates(q: CandidateQuery): Promise<Profile[]> {
    const genders = [...new Set(q.genders)];
    if (genders.length === 0 || q.limit <= 0 || !(q.radiusKm >= 0)) return Promise.resolve([]);
    const box = boundingBox(q.near, q.radiusKm);
    return read(() => {
      const rows = this.candidatesStmt.all({
        lat: q.near.lat,
        lon: q.near.lon,
        minLat: box.minLat,
        maxLat: box.maxLat,
        lon1a: box.lon1[0],
        lon1b: box.lon1[1],
        lon2a: box.lon2[0],
        lon2b: box.lon2[1],
        userId: q.userId,
        // Unused slots get a value no gender has.
        g1: genders[0] ?? '',
        g2: genders[1] ?? '',
        g3: genders[2] ?? '',
        bornOnOrAfter: q.bornOnOrAfter,
        bornOnOrBefore: q.bornOnOrBefore,
        seekerGenderBit: GENDER_BIT[q.seekerGender] ?? 0,
        seekerAge: q.seekerAge,
        radiusKm: q.radiusKm,
        limit: Math.floor(q.limit),
      }) as ProfileRow[];
      return rows.map(toProfile);
    });
  }

  /** Keyset pages by user_id, each page one short read, so writers are never held up for long. */
  async *scanAll(pageSize: number): AsyncIterable<Profile[]> {
    let after = '';
    for (;;) {
      const rows = await read(() => this.scanStmt.all(after, pageSize) as ProfileRow[]);
      if (rows.length === 0) return;
      yield rows.map(toProfile);
      after = rows[rows.length - 1]!.user_id;
    }
  }

  touchLastActive(userId: string, at: number): Promise<void> {
    return write(this.ctx, () => {
      this.touchStmt.run(at, userId);
    });
  }
}
