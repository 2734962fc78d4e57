// The pipeline's building blocks: latest-frame backpressure, the shared batch scheduler and the
// tracker's event rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Subject } from 'rxjs';
import { BatchScheduler, SchedulerFullError } from '../agent/pipeline/batch-scheduler.js';
import { latestOnly } from '../agent/pipeline/latest-only.js';
import { type FaceObservation, FaceTracker } from '../agent/pipeline/tracker.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('latestOnly', () => {
  it('keeps only the newest item while busy and counts the dropped ones', async () => {
    const source = new Subject<number>();
    const processed: number[] = [];
    const dropped: number[] = [];
    let release: (() => void) | undefined;
    const done = new Promise<void>((resolve) => {
      source
        .pipe(latestOnly(async (n: number) => {
          processed.push(n);
          if (n === 1) await new Promise<void>((r) => (release = r));
          return n;
        }, (n) => dropped.push(n)))
        .subscribe({ complete: () => resolve() });
    });
    source.next(1); // starts, blocks
    for (let n = 2; n <= 6; n++) source.next(n); // 2..5 are superseded, 6 waits
    assert.deepEqual(processed, [1]);
    assert.deepEqual(dropped, [2, 3, 4, 5]);
    release?.();
    await sleep(10);
    source.complete();
    await done;
    assert.deepEqual(processed, [1, 6]);
  });

  it('after unsubscribe, lets the item in progress finish and never starts the pending one', async () => {
    const source = new Subject<number>();
    const processed: number[] = [];
    let release: (() => void) | undefined;
    let finished = false;
    const subscription = source
      .pipe(latestOnly(async (n: number) => {
        processed.push(n);
        if (n === 1) await new Promise<void>((r) => (release = r));
        finished = true;
        return n;
      }))
      .subscribe();
    source.next(1); // in progress
    source.next(2); // pending
    subscription.unsubscribe(); // a camera stopping: its models close once the frame in progress ends
    release?.();
    await sleep(10);
    assert.equal(finished, true);
    assert.deepEqual(processed, [1], 'the pending frame would have run on closed models');
  });
});

describe('BatchScheduler', () => {
  it('batches requests that arrive within the wait window into one run', async () => {
    const runs: number[][] = [];
    const s = new BatchScheduler<number, number>('double', async (xs) => {
      runs.push(xs);
      return xs.map((x) => x * 2);
    }, { maxBatch: 8, maxWaitMs: 20 });
    const results = await Promise.all([s.submit(1), s.submitAll([2, 3]), s.submit(4)]);
    assert.deepEqual(results, [2, [4, 6], 8]);
    assert.deepEqual(runs, [[1, 2, 3, 4]]);
    assert.equal(s.stats.runs, 1);
    assert.deepEqual(s.stats.sizes, { 4: 1 });
  });

  it('runs at once when a batch is full, and splits larger loads', async () => {
    const runs: number[][] = [];
    const s = new BatchScheduler<number, number>('id', async (xs) => {
      runs.push(xs);
      return xs;
    }, { maxBatch: 2, maxWaitMs: 10_000, maxPending: 10 });
    const started = Date.now();
    assert.deepEqual(await s.submitAll([1, 2, 3, 4]), [1, 2, 3, 4]);
    assert.ok(Date.now() - started < 5000, 'full batches must not wait for maxWaitMs');
    assert.deepEqual(runs, [[1, 2], [3, 4]]);
  });

  it('runs a partial batch at once when no more requests are coming, keeping a frame\'s items together', async () => {
    const runs: number[][] = [];
    let more = false;
    const s = new BatchScheduler<number, number>('eager', async (xs) => {
      runs.push(xs);
      return xs;
    }, { maxBatch: 8, maxWaitMs: 60_000, moreComing: () => more });
    assert.deepEqual(await s.submitAll([1, 2, 3]), [1, 2, 3]);
    assert.deepEqual(runs, [[1, 2, 3]]);
    more = true;
    const waiting = s.submit(4);
    await sleep(20);
    assert.equal(runs.length, 1, 'waits while another producer is busy');
    more = false;
    await s.submitAll([5]);
    assert.deepEqual(await waiting, 4);
    assert.deepEqual(runs[1], [4, 5]);
  });

  it('refuses work beyond its bound instead of queueing it', async () => {
    let release: (() => void) | undefined;
    const s = new BatchScheduler<number, number>('slow', async (xs) => {
      await new Promise<void>((r) => (release = r));
      return xs;
    }, { maxBatch: 1, maxWaitMs: 0, maxPending: 2 });
    const first = s.submit(1); // running
    await sleep(5);
    const waiting = [s.submit(2), s.submit(3)];
    await assert.rejects(s.submit(4), SchedulerFullError);
    assert.equal(s.stats.refused, 1);
    release?.();
    await first;
    await sleep(5);
    release?.();
    await sleep(5);
    release?.();
    assert.deepEqual(await Promise.all(waiting), [2, 3]);
  });

  it('rejects every request of a failed run with the error', async () => {
    const s = new BatchScheduler<number, number>('broken', async () => {
      throw new Error('model failed');
    }, { maxBatch: 4, maxWaitMs: 1 });
    await assert.rejects(s.submitAll([1, 2]), /model failed/);
    assert.deepEqual(await new BatchScheduler<number, number>('ok', async (xs) => xs, { maxBatch: 4, maxWaitMs: 1 }).submit(5), 5);
  });
});

describe('FaceTracker', () => {
  const box = (x: number) => ({ x1: x, y1: 100, x2: x + 100, y2: 220 });
  const seen = (x: number, identity: string | null, unknown = false, distance = 0.4): FaceObservation => ({
    box: box(x),
    detectionScore: 0.99,
    identity,
    unknown,
    distance,
  });

  it('reports a track once when its vote becomes confident, then stays quiet', () => {
    const t = new FaceTracker('cam', { minVotes: 3, cooldownMs: 60_000 });
    assert.deepEqual(t.update(0, [seen(100, 'ann')]), []);
    assert.deepEqual(t.update(200, [seen(104, 'ann')]), []);
    const [event] = t.update(400, [seen(108, 'ann')]);
    assert.equal(event?.identity, 'ann');
    assert.equal(event?.unknown, false);
    assert.equal(event?.score, 1);
    assert.ok(Math.abs((event?.distance ?? 0) - 0.4) < 1e-9);
    for (let k = 0; k < 10; k++) assert.deepEqual(t.update(600 + k * 200, [seen(110, 'ann')]), []);
  });

  it('votes by score: a stray mismatch does not flip the identity', () => {
    const t = new FaceTracker('cam', { minVotes: 3, minShare: 0.6 });
    t.update(0, [seen(100, 'ann')]);
    t.update(100, [seen(100, 'bob')]);
    const [e] = t.update(200, [seen(100, 'ann')]);
    assert.equal(e?.identity, 'ann');
    assert.ok(Math.abs((e?.score ?? 0) - 2 / 3) < 1e-9, 'score is the leader\'s share of the vote');
  });

  it('reports again only when the identity of the track changes', () => {
    const t = new FaceTracker('cam', { minVotes: 2, minShare: 0.5 });
    t.update(0, [seen(100, 'ann')]);
    assert.equal(t.update(100, [seen(100, 'ann')])[0]?.identity, 'ann');
    t.update(200, [seen(100, 'bob')]);
    t.update(300, [seen(100, 'bob')]);
    const later = t.update(400, [seen(100, 'bob')]);
    assert.equal(later[0]?.identity, 'bob');
  });

  it('one visitor is one event: a broken track of the same person inside the cooldown is not reported', () => {
    const t = new FaceTracker('cam', { minVotes: 2, cooldownMs: 10_000, maxAgeMs: 500 });
    t.update(0, [seen(100, 'ann')]);
    assert.equal(t.update(100, [seen(100, 'ann')]).length, 1);
    // The face disappears long enough to close the track, then comes back: a new track.
    t.update(2000, [seen(600, 'ann')]);
    assert.deepEqual(t.update(2100, [seen(600, 'ann')]), []);
    // After the cooldown the same person is a new visit.
    t.update(20_000, [seen(100, 'ann')]);
    assert.equal(t.update(20_100, [seen(100, 'ann')])[0]?.identity, 'ann');
  });

  it('reports confident unknown faces once per track, or not at all when disabled', () => {
    const on = new FaceTracker('cam', { minVotes: 2 });
    on.update(0, [seen(100, null, true, 0.9)]);
    const [u] = on.update(100, [seen(100, null, true, 0.9)]);
    assert.equal(u?.identity, null);
    assert.equal(u?.unknown, true);
    assert.deepEqual(on.update(200, [seen(100, null, true, 0.9)]), []);
    const off = new FaceTracker('cam', { minVotes: 2, reportUnknown: false });
    off.update(0, [seen(100, null, true)]);
    assert.deepEqual(off.update(100, [seen(100, null, true)]), []);
  });

  it('uncertain matches (neither identity nor unknown) do not vote', () => {
    const t = new FaceTracker('cam', { minVotes: 2 });
    for (let k = 0; k < 5; k++) assert.deepEqual(t.update(k * 100, [seen(100, null, false, 0.65)]), []);
  });

  it('keeps two faces in one frame on separate tracks', () => {
    const t = new FaceTracker('cam', { minVotes: 2 });
    t.update(0, [seen(100, 'ann'), seen(500, 'bob')]);
    const events = t.update(100, [seen(505, 'bob'), seen(102, 'ann')]);
    assert.deepEqual(events.map((e) => e.identity).sort(), ['ann', 'bob']);
    assert.equal(new Set(events.map((e) => e.trackId)).size, 2);
    assert.equal(t.activeTracks, 2);
  });
});
