// Matcher search cost against gallery size: `npm run bench:matcher` prints a table of the time of
// one match() over 100, 1,000 and 10,000 random unit-length 128-d embeddings (10 per identity).
import os from 'node:os';
import { seededRandom } from '../util/seeded-random.js';
import { Matcher } from './matcher.js';

const DIMS = 128;
const SIZES = [100, 1_000, 10_000];


function unitVector(rand: () => number): Float32Array {
  const v = new Float32Array(DIMS);
  let n = 0;
  for (let i = 0; i < DIMS; i++) {
    v[i] = rand() * 2 - 1;
    n += (v[i] as number) ** 2;
  }
  const s = 1 / Math.sqrt(n);
  for (let i = 0; i < DIMS; i++) v[i] = (v[i] as number) * s;
  return v;
}

const rand = seededRandom(42);
const rows: string[][] = [['kernel', 'embeddings', 'identities', 'per match (µs)', 'p95 (µs)', 'ns per embedding']];
for (const simd of [true, false])
for (const size of SIZES) {
  const matcher = new Matcher('bench', { match: 0.6, unknown: 0.7 }, { simd });
  matcher.load(Array.from({ length: size }, (_, i) => ({ identity: `person-${Math.floor(i / 10)}`, embedding: unitVector(rand) })));
  const probes = Array.from({ length: 64 }, () => unitVector(rand));
  let sink = 0;
  for (let i = 0; i < 200; i++) sink += matcher.match(probes[i % probes.length] as Float32Array).distance; // warm up the JIT
  const iterations = Math.max(200, Math.round(2_000_000 / size));
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    sink += matcher.match(probes[i % probes.length] as Float32Array).distance;
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const p95 = times[Math.floor(times.length * 0.95)] as number;
  rows.push([matcher.kernel, size.toLocaleString('en'), matcher.identities.toLocaleString('en'), mean.toFixed(1), p95.toFixed(1), ((mean * 1000) / size).toFixed(1)]);
  if (Number.isNaN(sink)) process.stdout.write('');
}
const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length))) ?? [];
for (const r of rows) process.stdout.write(`| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ')} |\n`);
process.stdout.write(`\nnode ${process.version}, ${DIMS}-d embeddings, one match() = a full scan (no index), ${os.cpus().length} CPUs, load average ${os.loadavg()[0]?.toFixed(1)}\n`);
