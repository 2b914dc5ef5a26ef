import type { CandidateQuery, Gender, Preferences, Profile, ProfileStore } from '../types.js';
import { haversineKm } from '../sqlite/geo.js';
import { toNum, type Row, type Session } from './client.js';
import { GeoGrid, type Cell } from './geocell.js';

const PROFILE_COLUMNS =
  'user_id, display_name, bio, birth_date, gender, preferences, lat, lon, show_presence, last_active_at, updated_at';

/** How many cell partitions a candidates query reads at once. */
const CELL_READ_CONCURRENCY = 16;

function toProfile(r: Row): Profile | undefined {
  // A row without a display name holds only a last_active_at written by touchLastActive for
  // a user who has no profile (a blind write, see touchLastActive): no profile.
  if (r.display_name === null || r.display_name === undefined) return undefined;
  return {
    userId: r.user_id,
    displayName: r.display_name,
    bio: r.bio,
    birthDate: r.birth_date,
    gender: r.gender as Gender,
    preferences: JSON.parse(r.preferences as string) as Preferences,
    location: r.lat === null || r.lon === null ? null : { lat: r.lat as number, lon: r.lon as number },
    showPresence: r.show_presence === true,
    lastActiveAt: toNum(r.last_active_at),
    updatedAt: toNum(r.updated_at),
  };
}

interface CellRow {
  userId: string;
  lat: number;
  lon: number;
  gender: Gender;
  birthDate: string;
  prefAgeMin: number;
  prefAgeMax: number;
  prefGenders: string[];
  prefMaxDistanceKm: number;
}

/** The filter of the embedded backend's candidates query, on what a cell row (or profile) holds. */
function accepts(q: CandidateQuery, genders: ReadonlySet<string>, c: CellRow): number | undefined {
  if (c.userId === q.userId) return undefined;
  if (!genders.has(c.gender)) return undefined;
  if (c.birthDate < q.bornOnOrAfter || c.birthDate > q.bornOnOrBefore) return undefined;
  if (!c.prefGenders.includes(q.seekerGender)) return undefined;
  if (!(c.prefAgeMin <= q.seekerAge && c.prefAgeMax >= q.seekerAge)) return undefined;
  const d = haversineKm(q.near.lat, q.near.lon, c.lat, c.lon);
  if (!(d <= q.radiusKm && d <= c.prefMaxDistanceKm)) return undefined;
  return d;
}

function fromProfile(p: Profile): CellRow | undefined {
  if (!p.location) return undefined;
  return {
    userId: p.userId,
    lat: p.location.lat,
    lon: p.location.lon,
    gender: p.gender,
    birthDate: p.birthDate,
    prefAgeMin: p.preferences.ageMin,
    prefAgeMax: p.preferences.ageMax,
    prefGenders: [...p.preferences.genders],
    prefMaxDistanceKm: p.preferences.maxDistanceKm,
  };
}

/**
 * profiles ((user_id)) holds the profile; profiles_by_geocell ((lat_row, lon_col), user_id)
 * holds, per coarse cell, what the deck filter needs. put() writes both (and deletes the
 * old cell row when the user moved) in one logged batch. candidates() reads the few cells
 * around the point, filters and sorts in TS, then loads the winners from `profiles` and
 * keeps only those whose current profile still says the same (a stale cell row left by two
 * racing puts is thus never returned).
 *
 * last_active_at is a max register without a read: touchLastActive writes it USING
 * TIMESTAMP = the activity time (µs), and put() writes it the same way, so the latest
 * activity wins whatever the order of the writes.
 */
export class CassandraProfileStore implements ProfileStore {
  private readonly upsertQ: string;
  private readonly lastActiveQ: string;
  private readonly getQ: string;
  private readonly locationQ: string;
  private readonly cellInsertQ: string;
  private readonly cellDeleteQ: string;
  private readonly cellReadQ: string;
  private readonly scanQ: string;

  constructor(
    private readonly s: Session,
    ks: string,
    private readonly grid: GeoGrid,
  ) {
    this.upsertQ = `INSERT INTO ${ks}.profiles (user_id, display_name, bio, birth_date, gender, preferences, lat, lon, show_presence, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.lastActiveQ = `UPDATE ${ks}.profiles USING TIMESTAMP ? SET last_active_at = ? WHERE user_id = ?`;
    this.getQ = `SELECT ${PROFILE_COLUMNS} FROM ${ks}.profiles WHERE user_id = ?`;
    this.locationQ = `SELECT lat, lon FROM ${ks}.profiles WHERE user_id = ?`;
    this.scanQ = `SELECT ${PROFILE_COLUMNS} FROM ${ks}.profiles`;
    this.cellInsertQ = `INSERT INTO ${ks}.profiles_by_geocell (lat_row, lon_col, user_id, lat, lon, gender, birth_date,
        pref_age_min, pref_age_max, pref_genders, pref_max_distance_km) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.cellDeleteQ = `DELETE FROM ${ks}.profiles_by_geocell WHERE lat_row = ? AND lon_col = ? AND user_id = ?`;
    this.cellReadQ = `SELECT user_id, lat, lon, gender, birth_date, pref_age_min, pref_age_max, pref_genders, pref_max_distance_km
      FROM ${ks}.profiles_by_geocell WHERE lat_row = ? AND lon_col = ?`;
  }

  async put(p: Profile): Promise<void> {
    const old = (await this.s.execute(this.locationQ, [p.userId], { idempotent: true })).first();
    const oldCell: Cell | undefined =
      old && old.lat !== null && old.lon !== null ? this.grid.cellOf({ lat: old.lat as number, lon: old.lon as number }) : undefined;
    const cell = p.location ? this.grid.cellOf(p.location) : undefined;
    const queries: Array<{ query: string; params: unknown[] }> = [
      {
        query: this.upsertQ,
        params: [
          p.userId,
          p.displayName,
          p.bio,
          p.birthDate,
          p.gender,
          JSON.stringify(p.preferences),
          p.location ? p.location.lat : null,
          p.location ? p.location.lon : null,
          p.showPresence,
          p.updatedAt,
        ],
      },
      { query: this.lastActiveQ, params: [p.lastActiveAt * 1000, p.lastActiveAt, p.userId] },
    ];
    if (oldCell && !(cell && cell.row === oldCell.row && cell.col === oldCell.col)) {
      queries.push({ query: this.cellDeleteQ, params: [oldCell.row, oldCell.col, p.userId] });
    }
    if (cell && p.location) {
      queries.push({
        query: this.cellInsertQ,
        params: [
          cell.row,
          cell.col,
          p.userId,
          p.location.lat,
          p.location.lon,
          p.gender,
          p.birthDate,
          p.preferences.ageMin,
          p.preferences.ageMax,
          [...new Set(p.preferences.genders)],
          p.preferences.maxDistanceKm,
        ],
      });
    }
    await this.s.batch(queries, { logged: true, idempotent: true });
  }

  async get(userId: string): Promise<Profile | undefined> {
    const r = (await this.s.execute(this.getQ, [userId], { idempotent: true })).first();
    return r ? toProfile(r) : undefined;
  }

  /** In the order asked for; unknown ids are skipped, repeats returned once. One read per id, in parallel. */
  async getMany(userIds: string[]): Promise<Profile[]> {
    const unique = [...new Set(userIds)];
    const found = await Promise.all(unique.map((id) => this.get(id)));
    return found.filter((p): p is Profile => p !== undefined);
  }

  async candidates(q: CandidateQuery): Promise<Profile[]> {
    const genders = new Set<string>(q.genders);
    const limit = Math.floor(q.limit);
    if (genders.size === 0 || !(limit > 0) || !(q.radiusKm >= 0)) return [];
    const cells = this.grid.cellsWithin(q.near, q.radiusKm);

    const hits: Array<{ d: number; row: CellRow }> = [];
    for (let i = 0; i < cells.length; i += CELL_READ_CONCURRENCY) {
      const batch = cells.slice(i, i + CELL_READ_CONCURRENCY);
      const rowsPerCell = await Promise.all(batch.map((c) => this.s.all(this.cellReadQ, [c.row, c.col], { fetchSize: 2000 })));
      for (const rows of rowsPerCell) {
        for (const r of rows) {
          const c: CellRow = {
            userId: r.user_id,
            lat: r.lat,
            lon: r.lon,
            gender: r.gender,
            birthDate: r.birth_date,
            prefAgeMin: r.pref_age_min,
            prefAgeMax: r.pref_age_max,
            prefGenders: (r.pref_genders as string[] | null) ?? [],
            prefMaxDistanceKm: r.pref_max_distance_km,
          };
          const d = accepts(q, genders, c);
          if (d !== undefined) hits.push({ d, row: c });
        }
      }
    }
    hits.sort((a, b) => a.d - b.d || (a.row.userId < b.row.userId ? -1 : a.row.userId > b.row.userId ? 1 : 0));

    // Load the nearest from `profiles`, keeping those whose profile still matches its cell row.
    const out: Profile[] = [];
    const seen = new Set<string>();
    let next = 0;
    while (out.length < limit && next < hits.length) {
      const chunk = hits.slice(next, next + (limit - out.length));
      next += chunk.length;
      const profiles = await Promise.all(chunk.map((h) => this.get(h.row.userId)));
      chunk.forEach((h, i) => {
        const p = profiles[i];
        if (!p || seen.has(p.userId) || !p.location) return;
        if (p.location.lat !== h.row.lat || p.location.lon !== h.row.lon) return; // moved since: its new cell row decides
        const fresh = fromProfile(p);
        if (!fresh || accepts(q, genders, fresh) === undefined) return;
        seen.add(p.userId);
        out.push(p);
      });
    }
    return out.slice(0, limit);
  }

  /** A full table scan in token order, page by page. */
  async *scanAll(pageSize: number): AsyncIterable<Profile[]> {
    for await (const rows of this.s.pages(this.scanQ, [], pageSize)) {
      const page = rows.map(toProfile).filter((p): p is Profile => p !== undefined);
      if (page.length > 0) yield page;
    }
  }

  /**
   * A blind write with max semantics (see the class comment). For a user without a profile it
   * leaves a row holding only last_active_at, which get() treats as no profile.
   */
  async touchLastActive(userId: string, at: number): Promise<void> {
    await this.s.execute(this.lastActiveQ, [at * 1000, at, userId], { idempotent: true });
  }
}
