/**
 * A coarse, roughly equal-area grid for the deck query. Latitude is cut into rows of
 * `cellDeg` degrees; each row is cut into as many longitude columns as keep a cell about
 * `cellDeg` degrees of latitude wide on the ground (fewer towards the poles, one at a pole
 * row), so a radius query touches about the same number of cells anywhere on Earth.
 * A profile lives in one cell partition, `profiles_by_geocell ((lat_row, lon_col), user_id)`.
 */
import type { Location } from '../types.js';
import { boundingBox } from '../sqlite/geo.js';

export interface Cell {
  row: number;
  col: number;
}

const RAD = Math.PI / 180;

export class GeoGrid {
  readonly rows: number;

  constructor(readonly cellDeg: number) {
    const rows = 180 / cellDeg;
    if (!(cellDeg > 0) || !Number.isInteger(Math.round(rows * 1e9) / 1e9) || rows > 18_000) {
      throw new Error(`geo cell size ${cellDeg} must divide 180 degrees (e.g. 0.25, 0.5, 1)`);
    }
    this.rows = Math.round(rows);
  }

  row(lat: number): number {
    return Math.min(this.rows - 1, Math.max(0, Math.floor((lat + 90) / this.cellDeg)));
  }

  /** Longitude columns in a row: the row's circumference at its centre in cells of cellDeg. */
  columns(row: number): number {
    const centre = -90 + (row + 0.5) * this.cellDeg;
    return Math.max(1, Math.round((360 / this.cellDeg) * Math.cos(centre * RAD)));
  }

  col(row: number, lon: number): number {
    const n = this.columns(row);
    return Math.min(n - 1, Math.max(0, Math.floor(((lon + 180) / 360) * n)));
  }

  cellOf(loc: Location): Cell {
    const row = this.row(loc.lat);
    return { row, col: this.col(row, loc.lon) };
  }

  /** Every cell that can hold a point within `radiusKm` of `center` (from the exact bounding box). */
  cellsWithin(center: Location, radiusKm: number): Cell[] {
    const box = boundingBox(center, radiusKm);
    const ranges = [box.lon1, box.lon2].filter(([a, b]) => a <= b);
    const out: Cell[] = [];
    for (let row = this.row(box.minLat); row <= this.row(box.maxLat); row++) {
      const cols = new Set<number>();
      for (const [a, b] of ranges) {
        for (let c = this.col(row, a); c <= this.col(row, b); c++) cols.add(c);
      }
      for (const col of [...cols].sort((x, y) => x - y)) out.push({ row, col });
    }
    return out;
  }
}
