import t, { type Test } from 'tap';
import sharp from 'sharp';
import { defaults, type KindredConfig } from '../../src/config.js';
import { ImageService, imageBlobKey, sniffImageFormat } from '../../src/domain/images.js';
import { KindredError, type ErrorCode } from '../../src/errors.js';
import { newId } from '../../src/ids.js';
import type { BlobStore, ImageRecord, ImageStore } from '../../src/storage/types.js';

class MemoryImages implements ImageStore {
  readonly rows = new Map<string, ImageRecord>();
  async addIfUnder(image: ImageRecord, max: number): Promise<boolean> {
    if ((await this.list(image.profileId)).length >= max) return false;
    this.rows.set(image.imageId, { ...image });
    return true;
  }
  async list(profileId: string): Promise<ImageRecord[]> {
    return [...this.rows.values()].filter((r) => r.profileId === profileId).sort((a, b) => a.position - b.position).map((r) => ({ ...r }));
  }
  async get(imageId: string): Promise<ImageRecord | undefined> {
    const row = this.rows.get(imageId);
    return row && { ...row };
  }
  async remove(profileId: string, imageId: string): Promise<boolean> {
    const row = this.rows.get(imageId);
    if (!row || row.profileId !== profileId) return false;
    return this.rows.delete(imageId);
  }
  async reorder(profileId: string, imageIds: string[]): Promise<void> {
    const mine = (await this.list(profileId)).map((r) => r.imageId).sort();
    if (JSON.stringify([...imageIds].sort()) !== JSON.stringify(mine)) throw new KindredError('INVALID_ARGUMENT', 'not exactly the images');
    imageIds.forEach((id, i) => {
      this.rows.get(id)!.position = i;
    });
  }
}

class MemoryBlobs implements BlobStore {
  readonly blobs = new Map<string, { data: Buffer; contentType: string }>();
  async put(key: string, data: Buffer, contentType: string): Promise<void> {
    this.blobs.set(key, { data: Buffer.from(data), contentType });
  }
  async get(key: string): Promise<{ data: Buffer; contentType: string } | undefined> {
    return this.blobs.get(key);
  }
  async remove(key: string): Promise<void> {
    this.blobs.delete(key);
  }
}

function setup(overrides: Partial<KindredConfig['images']> = {}, images: ImageStore = new MemoryImages()) {
  const blobs = new MemoryBlobs();
  const config = { ...defaults.images, ...overrides };
  const service = new ImageService({ images, blobs, config });
  return { service, images, blobs, config };
}

async function rejectsWith(t: Test, p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  try {
    await p;
    t.fail(`expected ${code}`);
  } catch (err) {
    t.type(err, KindredError);
    t.equal((err as KindredError).code, code, `code ${code}: ${(err as Error).message}`);
    if (message) t.match((err as Error).message, message);
  }
}

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: 'red' } });
const noisy = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: 'black', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });

const ME = newId();
const OTHER = newId();

t.test('accepts PNG, JPEG and WebP, typed by their bytes', async (t) => {
  const { service, blobs } = setup();
  const png = await solid(200, 200).png().toBuffer();
  const view = await service.upload(ME, png, 'image/png');
  t.match(view, { url: `/images/${view.imageId}`, position: 0, width: 200, height: 200, contentType: 'image/png' });
  t.same(blobs.blobs.get(imageBlobKey(view.imageId))?.data, png, 'a PNG without metadata is stored byte for byte');

  const jpeg = await solid(300, 120).jpeg().toBuffer();
  const j = await service.upload(ME, new Uint8Array(jpeg), 'image/png'); // declared type is wrong
  t.equal(j.contentType, 'image/jpeg', 'the decoded format wins over the declared one');
  t.equal(j.position, 1);
  t.same([j.width, j.height], [300, 120]);

  const webp = await solid(100, 100).webp().toBuffer();
  const w = await service.upload(ME, webp, 'application/octet-stream');
  t.equal(w.contentType, 'image/webp');

  const listed = await service.list(ME);
  t.same(listed.map((i) => i.imageId), [view.imageId, j.imageId, w.imageId]);
  const read = await service.read(j.imageId);
  t.equal(read?.contentType, 'image/jpeg');
  t.equal(await service.read(newId()), undefined);
  t.equal(await service.read('../../etc/passwd'), undefined);
});

t.test('strips metadata and applies EXIF orientation', async (t) => {
  const { service, blobs } = setup();
  const jpeg = await noisy(300, 200)
    .jpeg()
    .withExif({ IFD0: { Make: 'Secret Camera', Copyright: 'me' } })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const before = await sharp(jpeg).metadata();
  t.ok(before.exif, 'fixture has EXIF');
  t.equal(before.orientation, 6);
  const view = await service.upload(ME, jpeg, 'image/jpeg');
  t.same([view.width, view.height], [200, 300], 'dimensions as displayed');
  const stored = blobs.blobs.get(imageBlobKey(view.imageId))!.data;
  const after = await sharp(stored).metadata();
  t.equal(after.exif, undefined, 'EXIF removed');
  t.notOk(after.orientation && after.orientation !== 1, 'no rotation left to apply');
  t.same([after.width, after.height], [200, 300]);
  t.notOk(stored.includes(Buffer.from('Secret Camera')));
});

t.test('refuses what is not a complete still JPEG, PNG or WebP', async (t) => {
  const { service, blobs } = setup();
  await rejectsWith(t, service.upload(ME, Buffer.from('hello, I am a text file\n'), 'image/jpeg'), 'UNSUPPORTED_MEDIA', /JPEG, PNG and WebP/);
  await rejectsWith(t, service.upload(ME, Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"/>'), 'image/svg+xml'), 'UNSUPPORTED_MEDIA');
  await rejectsWith(t, service.upload(ME, new Uint8Array(0), 'image/png'), 'UNSUPPORTED_MEDIA');

  const gif = await solid(100, 100).gif().toBuffer();
  await rejectsWith(t, service.upload(ME, gif, 'image/gif'), 'UNSUPPORTED_MEDIA', /GIF/);

  const tiff = await solid(100, 100).tiff().toBuffer();
  await rejectsWith(t, service.upload(ME, tiff, 'image/jpeg'), 'UNSUPPORTED_MEDIA', /TIFF/);

  const jpeg = await noisy(400, 400).jpeg().toBuffer();
  await rejectsWith(t, service.upload(ME, jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'image/jpeg'), 'UNSUPPORTED_MEDIA', /could not be decoded/);
  await rejectsWith(t, service.upload(ME, jpeg.subarray(0, 40), 'image/jpeg'), 'UNSUPPORTED_MEDIA');

  const png = await noisy(400, 400).png().toBuffer();
  await rejectsWith(t, service.upload(ME, png.subarray(0, Math.floor(png.length / 2)), 'image/png'), 'UNSUPPORTED_MEDIA');

  // A PNG signature followed by garbage.
  const fake = Buffer.concat([png.subarray(0, 8), Buffer.alloc(500, 7)]);
  await rejectsWith(t, service.upload(ME, fake, 'image/png'), 'UNSUPPORTED_MEDIA');

  const frame = await solid(100, 100).png().toBuffer();
  const frame2 = await sharp({ create: { width: 100, height: 100, channels: 3, background: 'blue' } }).png().toBuffer();
  const animated = await sharp([frame, frame2], { join: { animated: true } }).webp().toBuffer();
  t.equal((await sharp(animated).metadata()).pages, 2, 'fixture is animated');
  await rejectsWith(t, service.upload(ME, animated, 'image/webp'), 'UNSUPPORTED_MEDIA', /animated/);

  t.equal(blobs.blobs.size, 0, 'nothing stored');
  t.same(await service.list(ME), []);
});

t.test('enforces byte and pixel limits', async (t) => {
  const { service } = setup({ maxBytes: 20_000, maxWidth: 1000, maxHeight: 800, minWidth: 64, minHeight: 64 });
  const big = await noisy(300, 300).png().toBuffer();
  t.ok(big.length > 20_000);
  await rejectsWith(t, service.upload(ME, big, 'image/png'), 'PAYLOAD_TOO_LARGE', /20000/);
  await rejectsWith(t, service.upload(ME, await solid(1001, 100).png().toBuffer(), 'image/png'), 'INVALID_ARGUMENT', /1001x100.*1000x800/);
  await rejectsWith(t, service.upload(ME, await solid(100, 801).png().toBuffer(), 'image/png'), 'INVALID_ARGUMENT', /at most/);
  await rejectsWith(t, service.upload(ME, await solid(63, 100).png().toBuffer(), 'image/png'), 'INVALID_ARGUMENT', /at least 64x64/);
  t.ok(await service.upload(ME, await solid(1000, 800).png().toBuffer(), 'image/png'), 'exactly at the limits is fine');
  t.ok(await service.upload(ME, await solid(64, 64).png().toBuffer(), 'image/png'));
});

t.test('a profile holds at most maxPerProfile images', async (t) => {
  const { service, blobs } = setup();
  const png = await solid(100, 100).png().toBuffer();
  for (let i = 0; i < 5; i++) await service.upload(ME, png, 'image/png');
  await rejectsWith(t, service.upload(ME, png, 'image/png'), 'LIMIT_REACHED', /at most 5 images/);
  t.equal(blobs.blobs.size, 5, 'no blob left behind');
  t.ok(await service.upload(OTHER, png, 'image/png'), 'the limit is per profile');
});

t.test('the race-safe limit: addIfUnder refusing removes the blob', async (t) => {
  class Lying extends MemoryImages {
    override async list(): Promise<ImageRecord[]> {
      return []; // as if another upload raced us past the early check
    }
    override async addIfUnder(): Promise<boolean> {
      return false;
    }
  }
  const { service, blobs } = setup({}, new Lying());
  await rejectsWith(t, service.upload(ME, await solid(100, 100).png().toBuffer(), 'image/png'), 'LIMIT_REACHED');
  t.equal(blobs.blobs.size, 0);
});

t.test('remove and reorder check ownership', async (t) => {
  const { service, blobs } = setup();
  const png = await solid(100, 100).png().toBuffer();
  const a = await service.upload(ME, png, 'image/png');
  const b = await service.upload(ME, png, 'image/png');
  const c = await service.upload(ME, png, 'image/png');
  const theirs = await service.upload(OTHER, png, 'image/png');

  await rejectsWith(t, service.remove(OTHER, a.imageId), 'NOT_FOUND');
  await rejectsWith(t, service.remove(ME, theirs.imageId), 'NOT_FOUND');
  await rejectsWith(t, service.remove(ME, newId()), 'NOT_FOUND');
  await rejectsWith(t, service.remove(ME, 'not-an-id'), 'NOT_FOUND');
  t.equal(blobs.blobs.size, 4);

  await rejectsWith(t, service.reorder(ME, [c.imageId, b.imageId, theirs.imageId]), 'NOT_FOUND');
  await rejectsWith(t, service.reorder(ME, [c.imageId, b.imageId]), 'INVALID_ARGUMENT', /exactly once/);
  await rejectsWith(t, service.reorder(ME, [c.imageId, b.imageId, b.imageId]), 'INVALID_ARGUMENT');
  await service.reorder(ME, [c.imageId, a.imageId, b.imageId]);
  t.same((await service.list(ME)).map((i) => [i.imageId, i.position]), [[c.imageId, 0], [a.imageId, 1], [b.imageId, 2]]);

  await service.remove(ME, a.imageId);
  t.equal(blobs.blobs.has(imageBlobKey(a.imageId)), false, 'blob deleted');
  t.equal(await service.read(a.imageId), undefined);
  t.same((await service.list(ME)).map((i) => [i.imageId, i.position]), [[c.imageId, 0], [b.imageId, 1]], 'positions stay dense');
  t.same((await service.list(OTHER)).map((i) => i.imageId), [theirs.imageId], "others' images untouched");

  const d = await service.upload(ME, png, 'image/png');
  t.equal(d.position, 2, 'new images go last');
});

t.test('sniffing', async (t) => {
  t.equal(sniffImageFormat(await solid(10, 10).png().toBuffer()), 'png');
  t.equal(sniffImageFormat(await solid(10, 10).jpeg().toBuffer()), 'jpeg');
  t.equal(sniffImageFormat(await solid(10, 10).webp().toBuffer()), 'webp');
  t.equal(sniffImageFormat(await solid(10, 10).gif().toBuffer()), undefined);
  t.equal(sniffImageFormat(new Uint8Array([0xff, 0xd8])), undefined);
});
