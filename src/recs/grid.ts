/**
 * The deck's geo cells: the same roughly equal-area lat/lon grid the Cassandra backend
 * partitions profiles by (storage/cassandra/geocell.ts), with each cell numbered densely
 * (row start + column) so a cell id indexes a flat Int32Array of list heads directly.
 *
 * Why not H3 or S2: their cell ids are sparse 64-bit numbers, so a per-cell index in shared
 * memory would need a hash table; this grid's ids are small integers computed with two
 * divisions, in any thread, with no library. Its cells are about `cellDeg` degrees of
 * latitude on each side everywhere (fewer columns towards the poles), so a radius covers
 * about the same number of cells anywhere on Earth, which is what H3's uniformity buys.
 */
import { GeoGrid } from '../storage/cassandra/geocell.js';
import { EARTH_RADIUS_KM, haversineKm } from '../storage/sqlite/geo.js';

const RAD = Math.PI / 180;

export interface Covering {
  /** cell ids, nearest first */
  cells: Int32Array;
  /** a lower bound of the distance (km) from the centre to any point of each cell */
  minKm: Float64Array;
}

export class CellGrid {
  private readonly geo: GeoGrid;
  /** first cell id of each row */
  private readonly rowStart: Int32Array;
  private readonly rowCols: Int32Array;
  readonly cellCount: number;
  /** a cell's side, km (north-south) */
  readonly cellKm: number;

  constructor(readonly cellDeg: number) {
    this.geo = new GeoGrid(cellDeg);
    this.rowStart = new Int32Array(this.geo.rows);
    this.rowCols = new Int32Array(this.geo.rows);
    let n = 0;
    for (let r = 0; r < this.geo.rows; r++) {
      this.rowStart[r] = n;
      this.rowCols[r] = this.geo.columns(r);
      n += this.rowCols[r]!;
    }
    this.cellCount = n;
    this.cellKm = cellDeg * 111.195;
  }

  cellOf(lat: number, lon: number): number {
    const row = this.geo.row(lat);
    return this.rowStart[row]! + this.geo.col(row, lon);
  }

  /** How many cells a radius covers, roughly, before computing the covering. */
  estimateCells(radiusKm: number): number {
    const cellKm = this.cellDeg * 111.2;
    const side = (2 * radiusKm) / cellKm + 2;
    return side * side;
  }

  /**
   * Every cell that can hold a point within `radiusKm` of the centre, sorted by a lower bound
   * of its distance. The bound is the distance to the cell box clamped towards the centre,
   * less a margin (0.5% + 0.2 km) that covers the difference between a parallel and a great
   * circle over a cell; it only decides the scan order and when a scan may stop.
   */
  covering(lat: number, lon: number, radiusKm: number): Covering {
    const cells = this.geo.cellsWithin({ lat, lon }, radiusKm);
    const ids = new Int32Array(cells.length);
    const minKm = new Float64Array(cells.length);
    const order = new Array<number>(cells.length);
    for (let i = 0; i < cells.length; i++) {
      const { row, col } = cells[i]!;
      ids[i] = this.rowStart[row]! + col;
      const lat0 = -90 + row * this.cellDeg;
      const lat1 = lat0 + this.cellDeg;
      const cols = this.rowCols[row]!;
      const lon0 = -180 + (col * 360) / cols;
      const lon1 = -180 + ((col + 1) * 360) / cols;
      const cLat = Math.min(lat1, Math.max(lat0, lat));
      let cLon = lon;
      if (!(lon >= lon0 && lon <= lon1)) {
        // the nearer edge, going either way round
        const d0 = Math.abs(((lon - lon0 + 540) % 360) - 180);
        const d1 = Math.abs(((lon - lon1 + 540) % 360) - 180);
        cLon = d0 < d1 ? lon0 : lon1;
      }
      const d = haversineKm(lat, lon, cLat, cLon);
      minKm[i] = Math.max(0, d * 0.995 - 0.2);
      order[i] = i;
    }
    order.sort((a, b) => minKm[a]! - minKm[b]!);
    const sortedIds = new Int32Array(cells.length);
    const sortedMin = new Float64Array(cells.length);
    for (let i = 0; i < order.length; i++) {
      sortedIds[i] = ids[order[i]!]!;
      sortedMin[i] = minKm[order[i]!]!;
    }
    return { cells: sortedIds, minKm: sortedMin };
  }
}

/** Latitude degrees spanned by `km` (for a cheap prefilter before the exact distance). */
export function kmToLatDeg(km: number): number {
  return km / (EARTH_RADIUS_KM * RAD);
}
