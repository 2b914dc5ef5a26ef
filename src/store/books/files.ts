/**
 * A book's cover and ebook file: checked from their bytes, never from a declared type.
 *
 * Covers must be JPEG, PNG or WebP (sniffed with the profile-image helpers in
 * src/domain/images.ts) and decode completely; they are stored re-encoded as a JPEG that
 * fits in 1200×1800 (metadata dropped, orientation applied), so a stored cover is small
 * and always safe to serve. Decoding runs in libuv's pool, a few at a time.
 *
 * Ebooks must be an EPUB (a ZIP whose first entry is the uncompressed `mimetype` file
 * saying application/epub+zip, per the OCF spec) or a PDF (`%PDF-` header and an `%%EOF`
 * trailer), within the configured size.
 */
import sharp from 'sharp';
import { KindredError } from '../../errors.js';
import { sniffImageFormat } from '../../domain/images.js';

export const COVER_MAX_WIDTH = 1200;
export const COVER_MAX_HEIGHT = 1800;
const COVER_MIN_SIDE = 32;

let decoding = 0;
const MAX_DECODING = 2;

export async function normaliseCover(data: Uint8Array, maxBytes: number): Promise<Buffer> {
  if (data.byteLength === 0) throw new KindredError('UNSUPPORTED_MEDIA', 'the cover is empty; send JPEG, PNG or WebP bytes');
  if (data.byteLength > maxBytes) throw new KindredError('PAYLOAD_TOO_LARGE', `the cover is ${data.byteLength} bytes; the limit is ${maxBytes}`);
  const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const format = sniffImageFormat(input);
  if (!format) throw new KindredError('UNSUPPORTED_MEDIA', 'a cover must be a JPEG, PNG or WebP image');
  if (decoding >= MAX_DECODING * 8) throw new KindredError('OVERLOADED', 'too many covers are being processed, retry later');
  decoding++;
  try {
    const options = { failOn: 'error' as const, limitInputPixels: 8000 * 8000 };
    const meta = await sharp(input, options).metadata().catch(() => {
      throw new KindredError('UNSUPPORTED_MEDIA', `the ${format.toUpperCase()} cover could not be decoded`);
    });
    if (meta.format !== format) throw new KindredError('UNSUPPORTED_MEDIA', `a cover must be a JPEG, PNG or WebP image (got ${meta.format})`);
    if ((meta.pages ?? 1) > 1) throw new KindredError('UNSUPPORTED_MEDIA', 'animated covers are not accepted');
    if (!meta.width || !meta.height || meta.width < COVER_MIN_SIDE || meta.height < COVER_MIN_SIDE) {
      throw new KindredError('INVALID_ARGUMENT', `cover: at least ${COVER_MIN_SIDE}x${COVER_MIN_SIDE} pixels are required`);
    }
    try {
      return await sharp(input, options)
        .autoOrient()
        .resize({ width: COVER_MAX_WIDTH, height: COVER_MAX_HEIGHT, fit: 'inside', withoutEnlargement: true })
        .flatten({ background: '#ffffff' })
        .jpeg({ quality: 85, mozjpeg: false })
        .toBuffer();
    } catch (err) {
      const reason = err instanceof Error ? err.message.split('\n')[0]!.replace(/^vips\w*:\s*/i, '') : 'corrupt data';
      throw new KindredError('UNSUPPORTED_MEDIA', `the ${format.toUpperCase()} cover could not be decoded: ${reason}`);
    }
  } finally {
    decoding--;
  }
}

export type EbookKind = { contentType: 'application/epub+zip'; ext: 'epub' } | { contentType: 'application/pdf'; ext: 'pdf' };

export function checkEbook(data: Uint8Array, maxBytes: number): EbookKind {
  if (data.byteLength > maxBytes) throw new KindredError('PAYLOAD_TOO_LARGE', `the ebook is ${data.byteLength} bytes; the limit is ${maxBytes}`);
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const isZip = b.length > 58 && b.readUInt32LE(0) === 0x04034b50;
  if (isZip) {
    const nameLen = b.readUInt16LE(26);
    const extraLen = b.readUInt16LE(28);
    const method = b.readUInt16LE(8);
    const name = b.toString('latin1', 30, 30 + nameLen);
    const content = b.toString('latin1', 30 + nameLen + extraLen, 30 + nameLen + extraLen + 20);
    if (name === 'mimetype' && method === 0 && content === 'application/epub+zip') return { contentType: 'application/epub+zip', ext: 'epub' };
    throw new KindredError('UNSUPPORTED_MEDIA', 'a ZIP that is not an EPUB (its first entry must be an uncompressed "mimetype" of application/epub+zip)');
  }
  if (b.length >= 8 && b.toString('latin1', 0, 5) === '%PDF-') {
    if (!b.toString('latin1', Math.max(0, b.length - 1024)).includes('%%EOF')) throw new KindredError('UNSUPPORTED_MEDIA', 'the PDF is truncated (no %%EOF trailer)');
    return { contentType: 'application/pdf', ext: 'pdf' };
  }
  throw new KindredError('UNSUPPORTED_MEDIA', 'an ebook must be an EPUB or a PDF file');
}
