import type { Location } from '../types.js';

/** Mean Earth radius (IUGG), km. Every backend must use the same figure so distance filters agree. */
export const EARTH_RADIUS_KM = 6371.0088;

const RAD = Math.PI / 180;

/** Great-circle distance in km (haversine). */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = (lat2 - lat1) * RAD;
  const dLon = (lon2 - lon1) * RAD;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/**
 * A lat/lon box containing every point within `radiusKm` of `center`, for an
 * index prefilter. Longitude may wrap the antimeridian, so it is given as up to
 * two ranges; the second is empty ([1, 0]) when not needed. Slightly padded so
 * float rounding never drops a point the exact distance check would keep.
 */
export interface BoundingBox {
  minLat: number;
  maxLat: number;
  lon1: [number, number];
  lon2: [number, number];
}

const EMPTY: [number, number] = [1, 0];

export function boundingBox(center: Location, radiusKm: number): BoundingBox {
  const r = Math.max(0, radiusKm) / EARTH_RADIUS_KM; // angular radius, radians
  const pad = 1e-9;
  const dLat = r / RAD + pad;
  const minLat = center.lat - dLat;
  const maxLat = center.lat + dLat;
  if (minLat <= -90 || maxLat >= 90 || r >= Math.PI / 2) {
    // The circle reaches a pole (or is huge): every longitude qualifies.
    return { minLat: Math.max(-90, minLat), maxLat: Math.min(90, maxLat), lon1: [-180, 180], lon2: EMPTY };
  }
  // Exact longitude half-width of the circle's bounding box (Matuschek, "Finding points within a distance").
  const dLon = Math.asin(Math.min(1, Math.sin(r) / Math.cos(center.lat * RAD))) / RAD + pad;
  const minLon = center.lon - dLon;
  const maxLon = center.lon + dLon;
  if (dLon >= 180) return { minLat, maxLat, lon1: [-180, 180], lon2: EMPTY };
  if (minLon < -180) return { minLat, maxLat, lon1: [minLon + 360, 180], lon2: [-180, maxLon] };
  if (maxLon > 180) return { minLat, maxLat, lon1: [minLon, 180], lon2: [-180, maxLon - 360] };
  return { minLat, maxLat, lon1: [minLon, maxLon], lon2: EMPTY };
}
