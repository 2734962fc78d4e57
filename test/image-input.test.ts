// Image input: bad files give an ImageDecodeError that names the file and says what is wrong,
// both from decodeImage and from the CLI; unusual but valid images decode to 3-channel RGB.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';

import { ModelRegistry } from '../agent/inference/model-registry.js';
import { decodeImage, ImageDecodeError } from '../agent/vision/image.js';
import { runCli, stderrLines } from './support/cli.js';
import { samplePath } from './support/samples.js';

let dir: string;
const bad: Record<'truncated' | 'text' | 'empty' | 'missing' | 'directory', string> = {
  truncated: '',
  text: '',
  empty: '',
  missing: '',
  directory: '',
};

/** The reason each bad input must give (a pattern on the message after the file name). */
const REASONS: Record<keyof typeof bad, RegExp> = {
  truncated: /truncated/i,
  text: /not a supported image/i,
  empty: /empty \(0 bytes\)/i,
  missing: /file not found/i,
  directory: /is a directory/i,
};

before(async () => {
  // The CLI loads the models before it reads the image: build missing ones once here, so the
  // parallel CLI runs below never build them concurrently (fresh clone).
  const registry = ModelRegistry.load();
  await registry.ensure(registry.models);
  dir = await mkdtemp(join(tmpdir(), 'facegate-image-input-'));
  const jpeg = await readFile(samplePath(1));
  bad.truncated = join(dir, 'truncated.jpg');
  await writeFile(bad.truncated, jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  bad.text = join(dir, 'notes.jpg');
  await writeFile(bad.text, 'this is a text file, not a picture\n');
  bad.empty = join(dir, 'empty.png');
  await writeFile(bad.empty, new Uint8Array(0));
  bad.missing = join(dir, 'no-such-photo.jpg');
  bad.directory = join(dir, 'a-folder.jpg');
  await mkdir(bad.directory);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('decodeImage rejects bad input with a clear ImageDecodeError', () => {
  for (const kind of Object.keys(REASONS) as (keyof typeof bad)[]) {
    it(`${kind} file`, async () => {
      await assert.rejects(decodeImage(bad[kind]), (err: unknown) => {
        assert.ok(err instanceof ImageDecodeError, `expected an ImageDecodeError, got ${String(err)}`);
        assert.equal(err.name, 'ImageDecodeError');
        assert.equal(err.source, bad[kind]);
        assert.ok(err.message.includes(bad[kind]), `message does not name the file: ${err.message}`);
        assert.match(err.message, REASONS[kind]);
        assert.ok(!err.message.includes('\n'), `message is not one line: ${err.message}`);
        return true;
      });
    });
  }

  it('names an in-memory buffer by its label', async () => {
    await assert.rejects(decodeImage(new Uint8Array([1, 2, 3, 4]), 'camera frame 7'), (err: unknown) => {
      assert.ok(err instanceof ImageDecodeError);
      assert.match(err.message, /camera frame 7: not a supported image/);
      return true;
    });
    await assert.rejects(decodeImage(new Uint8Array(0)), /image buffer: the file is empty/);
  });
});

describe('the CLI reports bad input on one line and exits 1', () => {
  it('detect <bad file>', async () => {
    const kinds = Object.keys(REASONS) as (keyof typeof bad)[];
    // Two at a time: each run is a separate node process.
    const results = [];
    for (let i = 0; i < kinds.length; i += 2) {
      results.push(...(await Promise.all(kinds.slice(i, i + 2).map(async (kind) => ({ kind, r: await runCli(['detect', bad[kind]]) })))));
    }
    for (const { kind, r } of results) {
      assert.equal(r.code, 1, `${kind}: exit code ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout, '', `${kind}: printed output despite the error`);
      const lines = stderrLines(r);
      assert.equal(lines.length, 1, `${kind}: expected one error line, got:\n${r.stderr}`);
      const line = lines[0] as string;
      // The log line is JSON when stderr is not a terminal; its message is what a person reads.
      const msg = (JSON.parse(line) as { msg: string; level: number }).msg;
      assert.ok(msg.includes(bad[kind]), `${kind}: error does not name the file: ${msg}`);
      assert.match(msg, REASONS[kind]);
      assert.match(msg, /^cannot read image /);
    }
  });
});

describe('valid but unusual images decode to 3-channel RGB', () => {
  it('PNG with an alpha channel', async () => {
    const width = 6;
    const height = 4;
    const rgba = Buffer.alloc(width * height * 4);
    for (let p = 0; p < width * height; p++) rgba.set([10 * p, 200, 255 - 10 * p, p % 2 ? 0 : 255], p * 4);
    const png = await sharp(rgba, { raw: { width, height, channels: 4 } }).png().toBuffer();
    assert.equal((await sharp(png).metadata()).channels, 4);
    const img = await decodeImage(png, 'alpha.png');
    assert.equal(img.width, width);
    assert.equal(img.height, height);
    assert.equal(img.data.length, width * height * 3);
    // Alpha is dropped, colour kept (also under fully transparent pixels).
    for (let p = 0; p < width * height; p++) assert.deepEqual([...img.data.subarray(p * 3, p * 3 + 3)], [10 * p, 200, 255 - 10 * p], `pixel ${p}`);
  });

  it('greyscale JPEG', async () => {
    const file = join(dir, 'grey.jpg');
    await sharp(samplePath(2)).resize(320).toColourspace('b-w').jpeg().toFile(file);
    const meta = await sharp(file).metadata();
    assert.equal(meta.channels, 1, 'the test file should be a 1-channel JPEG');
    const img = await decodeImage(file);
    assert.equal(img.width, 320);
    assert.equal(img.data.length, img.width * img.height * 3);
    let spread = 0;
    for (let p = 0; p < img.width * img.height; p++) {
      const [r, g, b] = [img.data[p * 3], img.data[p * 3 + 1], img.data[p * 3 + 2]] as [number, number, number];
      assert.ok(r === g && g === b, `pixel ${p} is not grey: ${r},${g},${b}`);
      spread = Math.max(spread, r);
    }
    assert.ok(spread > 100, 'the picture came out black');
  });

  it('EXIF-rotated JPEG is turned upright', async () => {
    // 40×20 landscape pixels tagged orientation 6 (rotate 90° clockwise to view): decodes 20×40.
    const file = join(dir, 'rotated.jpg');
    await sharp({ create: { width: 40, height: 20, channels: 3, background: { r: 0, g: 128, b: 255 } } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toFile(file);
    const img = await decodeImage(file);
    assert.deepEqual([img.width, img.height], [20, 40]);
  });
});
