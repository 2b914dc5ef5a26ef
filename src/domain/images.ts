/**
 * Profile images: validated by decoding, stored as blobs, listed as rows.
 *
 * An upload is accepted only when it really is a still JPEG, PNG or WebP image (decided
 * from its bytes, never from the declared Content-Type), within the configured byte and
 * pixel limits, and decodes completely (a truncated file is refused). Images carrying
 * EXIF/XMP/IPTC metadata (camera GPS positions, serial numbers) or an EXIF rotation are
 * re-encoded in their own format without metadata, upright; others are stored byte for byte.
 *
 * Decoding runs in libuv's thread pool, never on the event loop. sharp is limited to one
 * libvips thread per image and this service to a few images at a time, so uploads cannot
 * take the thread pool from file, DNS and scrypt work; a long queue answers OVERLOADED.
 */
import sharp, { type Metadata, type SharpOptions } from 'sharp';
import type { KindredConfig } from '../config.js';
import { KindredError } from '../errors.js';
import { isId, newId } from '../ids.js';
import type { BlobStore, ImageRecord, ImageStore } from '../storage/types.js';
import type { CommandResults } from './commands.js';

sharp.concurrency(1);
sharp.cache(false);

/** What clients see of an image (the `images.upload` / `images.list` result items). */
export type ImageView = CommandResults['images.upload']['image'];

export type ImageFormat = 'jpeg' | 'png' | 'webp';

export const IMAGE_CONTENT_TYPES: Record<ImageFormat, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

export interface ImageServiceDeps {
  images: ImageStore;
  blobs: BlobStore;
  config: KindredConfig['images'];
  /** Prefix of image URLs, e.g. "https://cdn.example.com"; URLs are "/images/<imageId>" without it. */
  publicBaseUrl?: string;
  /** Images decoded at once (default 2). */
  maxConcurrentDecodes?: number;
  /** Uploads allowed to wait for a decode slot before OVERLOADED (default 32). */
  maxQueuedDecodes?: number;
  /** Told about failures that do not fail the request (an orphaned blob). */
  log?: { warn(obj: object, msg: string): void };
}

/** Blob key of an image's bytes. */
export function imageBlobKey(imageId: string): string {
  return `images/${imageId}`;
}

/** The format the bytes announce, from their signature; undefined for anything else. */
export function sniffImageFormat(data: Uint8Array): ImageFormat | undefined {
  if (data.length >= 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (data.length >= 8 && png.every((b, i) => data[i] === b)) return 'png';
  if (
    data.length >= 12 &&
    ascii(data, 0, 4) === 'RIFF' &&
    ascii(data, 8, 12) === 'WEBP'
  ) return 'webp';
  return undefined;
}

function ascii(data: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...data.subarray(from, to));
}

/** Names a few formats people commonly try, for a helpful refusal. */
function describeFormat(data: Uint8Array): string {
  const head = ascii(data, 0, Math.min(data.length, 16));
  if (head.startsWith('GIF8')) return 'GIF';
  if (head.startsWith('BM')) return 'BMP';
  if (head.startsWith('II*') || head.startsWith('MM\0*')) return 'TIFF';
  if (data.length >= 12 && ascii(data, 4, 8) === 'ftyp') return 'HEIF/AVIF';
  if (head.startsWith('%PDF')) return 'PDF';
  if (/^\s*</.test(head)) return 'SVG/XML/HTML';
  return 'not a recognised image';
}

/** A counting semaphore with a bounded queue. */
class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number, private readonly maxQueued: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      if (this.waiting.length >= this.maxQueued) throw new KindredError('OVERLOADED', 'too many images are being processed, retry later');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // hand the slot over without releasing it
      else this.active--;
    }
  }
}

interface Decoded {
  data: Buffer;
  format: ImageFormat;
  width: number;
  height: number;
}

export class ImageService {
  private readonly images: ImageStore;
  private readonly blobs: BlobStore;
  private readonly config: KindredConfig['images'];
  private readonly baseUrl: string;
  private readonly limiter: Limiter;
  private readonly log: ImageServiceDeps['log'];

  constructor(deps: ImageServiceDeps) {
    this.images = deps.images;
    this.blobs = deps.blobs;
    this.config = deps.config;
    this.baseUrl = (deps.publicBaseUrl ?? '').replace(/\/+$/, '');
    this.limiter = new Limiter(Math.max(1, deps.maxConcurrentDecodes ?? 2), Math.max(0, deps.maxQueuedDecodes ?? 32));
    this.log = deps.log;
  }

  /** The public URL of an image. */
  urlOf(imageId: string): string {
    return `${this.baseUrl}/images/${imageId}`;
  }

  /**
   * Validates, stores and lists a new image last in the user's order.
   * `contentType` is what the client declared; the stored type comes from the decoded bytes.
   */
  async upload(userId: string, data: Uint8Array, contentType: string): Promise<ImageView> {
    void contentType; // informative only: the decoded format decides
    const { maxBytes, maxPerProfile } = this.config;
    if (data.byteLength > maxBytes) {
      throw new KindredError('PAYLOAD_TOO_LARGE', `the image is ${data.byteLength} bytes; the limit is ${maxBytes} bytes`);
    }
    if (data.byteLength === 0) throw new KindredError('UNSUPPORTED_MEDIA', 'the image is empty; send JPEG, PNG or WebP bytes');

    // Cheap early refusal before any decoding; addIfUnder below is the race-safe check.
    const existing = await this.images.list(userId);
    if (existing.length >= maxPerProfile) throw this.limitReached();

    const decoded = await this.limiter.run(() => this.decode(data));

    const imageId = newId();
    const key = imageBlobKey(imageId);
    const ct = IMAGE_CONTENT_TYPES[decoded.format];
    const row: ImageRecord = {
      profileId: userId,
      imageId,
      url: this.urlOf(imageId),
      position: existing.reduce((max, r) => Math.max(max, r.position + 1), 0),
      contentType: ct,
      width: decoded.width,
      height: decoded.height,
      bytes: decoded.data.byteLength,
      createdAt: Date.now(),
    };
    // Bytes first, so a listed row never points at missing bytes.
    await this.blobs.put(key, decoded.data, ct);
    let added: boolean;
    try {
      added = await this.images.addIfUnder(row, maxPerProfile);
    } catch (err) {
      await this.removeBlob(key);
      throw err;
    }
    if (!added) {
      await this.removeBlob(key);
      throw this.limitReached();
    }
    return toView(row);
  }

  /** The user's images in display order. */
  async list(userId: string): Promise<ImageView[]> {
    const rows = await this.images.list(userId);
    return rows.sort(byPosition).map(toView);
  }

  /** Removes one of the user's images; NOT_FOUND when it is not theirs. */
  async remove(userId: string, imageId: string): Promise<void> {
    if (!isId(imageId)) throw notFound();
    const row = await this.images.get(imageId);
    if (!row || row.profileId !== userId) throw notFound();
    if (!(await this.images.remove(userId, imageId))) throw notFound();
    await this.removeBlob(imageBlobKey(imageId));
    // Keep positions dense (0..n-1) so clients can treat them as indexes.
    const rest = (await this.images.list(userId)).sort(byPosition);
    if (rest.some((r, i) => r.position !== i)) {
      try {
        await this.images.reorder(userId, rest.map((r) => r.imageId));
      } catch (err) {
        this.log?.warn({ err, userId }, 'could not compact image positions after a removal');
      }
    }
  }

  /**
   * Sets the display order. `imageIds` must name each of the user's images exactly once;
   * an id that is not one of theirs is NOT_FOUND.
   */
  async reorder(userId: string, imageIds: string[]): Promise<void> {
    if (!Array.isArray(imageIds) || imageIds.some((id) => typeof id !== 'string')) {
      throw new KindredError('INVALID_ARGUMENT', 'imageIds: must be an array of image ids');
    }
    const rows = await this.images.list(userId);
    const mine = new Set(rows.map((r) => r.imageId));
    for (const id of imageIds) if (!mine.has(id)) throw notFound();
    if (new Set(imageIds).size !== imageIds.length || imageIds.length !== mine.size) {
      throw new KindredError('INVALID_ARGUMENT', 'imageIds: must list each of your images exactly once');
    }
    await this.images.reorder(userId, imageIds);
  }

  /** The bytes of an image for serving, or undefined. Image ids are unguessable, so this is public. */
  async read(imageId: string): Promise<{ data: Buffer; contentType: string } | undefined> {
    if (!isId(imageId)) return undefined;
    return this.blobs.get(imageBlobKey(imageId));
  }

  private limitReached(): KindredError {
    return new KindredError('LIMIT_REACHED', `a profile holds at most ${this.config.maxPerProfile} images`);
  }

  private async removeBlob(key: string): Promise<void> {
    try {
      await this.blobs.remove(key);
    } catch (err) {
      this.log?.warn({ err, key }, 'could not remove an image blob');
    }
  }

  private async decode(data: Uint8Array): Promise<Decoded> {
    const { maxWidth, maxHeight, minWidth, minHeight } = this.config;
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const sniffed = sniffImageFormat(input);
    // Only the three allowed decoders ever see the bytes: no SVG, PDF, TIFF, HEIF... parsing.
    if (!sniffed) throw new KindredError('UNSUPPORTED_MEDIA', `only JPEG, PNG and WebP images are accepted (got ${describeFormat(input)})`);

    const options: SharpOptions = { failOn: 'error', limitInputPixels: Math.max(1, maxWidth * maxHeight) };
    let meta: Metadata;
    try {
      meta = await sharp(input, options).metadata();
    } catch {
      throw new KindredError('UNSUPPORTED_MEDIA', `the ${sniffed.toUpperCase()} image could not be decoded`);
    }
    if (meta.format !== sniffed) {
      throw new KindredError('UNSUPPORTED_MEDIA', `only JPEG, PNG and WebP images are accepted (got ${meta.format})`);
    }
    if ((meta.pages ?? 1) > 1) throw new KindredError('UNSUPPORTED_MEDIA', 'animated images are not accepted');
    // Limits apply to the image as displayed (after EXIF rotation).
    const width = meta.autoOrient?.width ?? meta.width;
    const height = meta.autoOrient?.height ?? meta.height;
    if (!width || !height) throw new KindredError('UNSUPPORTED_MEDIA', 'the image has no dimensions');
    if (width > maxWidth || height > maxHeight) {
      throw new KindredError('INVALID_ARGUMENT', `the image is ${width}x${height}; at most ${maxWidth}x${maxHeight} is accepted`);
    }
    if (width < minWidth || height < minHeight) {
      throw new KindredError('INVALID_ARGUMENT', `the image is ${width}x${height}; at least ${minWidth}x${minHeight} is required`);
    }

    const needsRewrite = Boolean(meta.exif || meta.xmp || meta.iptc) || (meta.orientation ?? 1) !== 1;
    try {
      if (!needsRewrite) {
        // Decode every pixel so a truncated or corrupt file is refused; store the original bytes.
        await sharp(input, options).stats();
        return { data: input, format: sniffed, width, height };
      }
      // Re-encoding decodes every pixel too, and drops the metadata.
      let pipeline = sharp(input, options).autoOrient().keepIccProfile();
      if (sniffed === 'jpeg') pipeline = pipeline.jpeg({ quality: 88 });
      else if (sniffed === 'webp') pipeline = pipeline.webp({ quality: 88, lossless: false });
      else pipeline = pipeline.png({ palette: Boolean(meta.isPalette) });
      const { data: out, info } = await pipeline.toBuffer({ resolveWithObject: true });
      return { data: out, format: sniffed, width: info.width, height: info.height };
    } catch (err) {
      if (err instanceof KindredError) throw err;
      const reason = err instanceof Error ? err.message.split('\n')[0]!.replace(/^vips\w*:\s*/i, '') : 'corrupt data';
      throw new KindredError('UNSUPPORTED_MEDIA', `the ${sniffed.toUpperCase()} image could not be decoded: ${reason}`);
    }
  }
}

function byPosition(a: ImageRecord, b: ImageRecord): number {
  return a.position - b.position || (a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0);
}

function toView(row: ImageRecord): ImageView {
  return {
    imageId: row.imageId,
    url: row.url,
    position: row.position,
    width: row.width,
    height: row.height,
    contentType: row.contentType,
  };
}

function notFound(): KindredError {
  return new KindredError('NOT_FOUND', 'no such image');
}
