/**
 * Concurrency 1, taken apart: one caller on the bench's own redis-server, in-process, loops interleaved round by
 * round (medians). Each row gives calls/s, p50 latency, and node and redis-server CPU per call, so a tRPC row can
 * be read as the store row below it plus the middleware. Bundle it like run.ts does:
 *
 *   npx esbuild bench/latency.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=.bench-out/latency.mjs && node --expose-gc .bench-out/latency.mjs [--only NAME] [--seconds S]
 *
 * `--only NAME` runs one loop for S seconds (default 10), for `perf record`; with `--profile FILE` it writes a
 * V8 CPU profile of the loop alone (50 us sampling), for Chrome DevTools or a script; with `--heap FILE` a sampled
 * allocation profile of it (every 1 KiB).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { createRedisStore } from '../src/redis/index';
import { buildApp, procedurePath } from './app';
import { createRedisKv } from './baseline';
import { inProcessCall, median, quantile } from './load';
import { redisCpuUs, startBenchRedis } from './redisServer';

const POOL = 256;

const main = async (): Promise<void> => {
  const only = valueOf('--only');
  const seconds = Number(valueOf('--seconds') ?? 10);
  const server = await startBenchRedis();
  const redis = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
  try {
    await redis.ping();
    const store = createRedisStore({ redis, prefix: 'lat:' });
    const kv = createRedisKv(redis);
    const result = JSON.stringify({ json: { id: 1, createdAt: new Date().toISOString(), total: 42 }, meta: { values: { createdAt: ['Date'] } } });
    const fingerprint = 'f'.repeat(43);
    for (let i = 0; i < POOL; i++) {
      await store.claim({ id: `r${i}`, partition: 'p', token: 't', fingerprint, lockTtlMs: 10_000 });
      await store.complete({ id: `r${i}`, token: 't', result, ttlMs: 600_000 });
      await redis.set(`lat:g${i}`, result);
    }
    const app = buildApp({ store: 'redis', transport: 'in-process', redis });
    let seq = 0;
    const runId = Date.now().toString(36);
    const trpc = (path: string, replay: boolean): ((n: number) => Promise<void>) => {
      const call = inProcessCall(app, path);
      return replay ? (n) => call(`r.${runId}.${path}.${n % POOL}`) : () => call(`f.${runId}.${seq++}`);
    };
    const loops: Record<string, (n: number) => Promise<unknown>> = {
      'ioredis GET': (n) => redis.get(`lat:g${n % POOL}`),
      'store claim, completed (replay)': (n) => store.claim({ id: `r${n % POOL}`, partition: 'p', token: 'x', fingerprint, lockTtlMs: 10_000 }),
      'ioredis GET + SET NX + SET (seed fresh)': async () => {
        const key = `lat:s${seq++}`;
        await kv.get(key);
        await kv.setNx(key, 'processing', 10_000);
        await kv.set(key, result, 60_000);
      },
      'store claim + complete (fresh)': async () => {
        const id = `f${seq++}`;
        await store.claim({ id, partition: 'p', token: 't', fingerprint, lockTtlMs: 10_000 });
        await store.complete({ id, token: 't', result, ttlMs: 60_000 });
      },
      'trpc bare': trpc('bare', false),
      'trpc ours replay': trpc(procedurePath('ours', 'replay'), true),
      'trpc baseline replay': trpc(procedurePath('baseline', 'replay'), true),
      'trpc cached replay': trpc(procedurePath('cached', 'replay'), true),
      'trpc ours fresh': trpc(procedurePath('ours', 'fresh'), false),
      'trpc baseline fresh': trpc(procedurePath('baseline', 'fresh'), false),
    };
    // Complete the replay pools once.
    for (const name of ['trpc ours replay', 'trpc baseline replay', 'trpc cached replay']) {
      for (let i = 0; i < POOL; i++) await (loops[name] as (n: number) => Promise<unknown>)(i);
    }
    if (only) {
      const loop = loops[only];
      if (!loop) throw new Error(`latency: no loop named ${only} (${Object.keys(loops).join(', ')})`);
      await server.admin.config('RESETSTAT');
      const profile = valueOf('--profile');
      const session = profile ? await startProfile() : undefined;
      const heap = valueOf('--heap');
      const heapSession = heap ? await startHeapSampling() : undefined;
      const m = await window(loop, seconds * 1000, server.admin);
      if (session && profile) await stopProfile(session, profile);
      if (heapSession && heap) await stopHeapSampling(heapSession, heap);
      console.log(`${only}: ${format(m)}`);
      // Redis' own accounting: microseconds per command (a script's time includes the commands it runs).
      for (const line of (await server.admin.info('commandstats')).split('\r\n')) {
        const match = /^cmdstat_(\w+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/.exec(line);
        if (match && match[1] !== 'info' && match[1] !== 'config') console.log(`  ${match[1]}: ${match[2]} calls, ${match[3]} us per call`);
      }
      return;
    }
    const names = Object.keys(loops);
    const results = new Map<string, Measured[]>();
    const rounds = Number(valueOf('--rounds') ?? 9);
    for (let round = -1; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + Math.max(0, round)) % names.length] as string;
        const m = await window(loops[name] as (n: number) => Promise<unknown>, round < 0 ? 100 : 250, server.admin);
        if (round >= 0) results.set(name, [...(results.get(name) ?? []), m]);
      }
    }
    for (const name of names) {
      const ms = results.get(name) ?? [];
      const pick = (f: (m: Measured) => number): number => median(ms.map(f));
      console.log(
        `${name.padEnd(40)} ${format({ perSec: pick((m) => m.perSec), p50Us: pick((m) => m.p50Us), nodeUs: pick((m) => m.nodeUs), redisUs: pick((m) => m.redisUs) })}`,
      );
    }
    await store.close();
  } finally {
    redis.disconnect();
    await server.stop();
  }
};

interface Measured {
  perSec: number;
  p50Us: number;
  nodeUs: number;
  redisUs: number;
}

const format = (m: Measured): string =>
  `${Math.round(m.perSec).toLocaleString('en-US').padStart(7)}/s  p50 ${m.p50Us.toFixed(0).padStart(4)} us  ` +
  `node ${m.nodeUs.toFixed(1).padStart(6)} us  redis ${m.redisUs.toFixed(1).padStart(5)} us per call`;

const window = async (loop: (n: number) => Promise<unknown>, durationMs: number, admin: Redis): Promise<Measured> => {
  (globalThis as { gc?: (o: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
  const latencies: number[] = [];
  const redisBefore = await redisCpuUs(admin);
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  for (let n = 0; performance.now() - start < durationMs; n++) {
    const t0 = performance.now();
    await loop(n);
    latencies.push(performance.now() - t0);
  }
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const redisUs = (await redisCpuUs(admin)) - redisBefore;
  latencies.sort((a, b) => a - b);
  const calls = latencies.length;
  return { perSec: (calls / elapsed) * 1000, p50Us: quantile(latencies, 0.5) * 1000, nodeUs: (cpu.user + cpu.system) / calls, redisUs: redisUs / calls };
};

const startProfile = async (): Promise<Session> => {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
  return session;
};

const stopProfile = async (session: Session, file: string): Promise<void> => {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
};

/** Allocation sampling (`--heap FILE`): which functions allocate, sampled every 1 KiB. */
const startHeapSampling = async (): Promise<Session> => {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  return session;
};

const stopHeapSampling = async (session: Session, file: string): Promise<void> => {
  const { profile } = await session.post('HeapProfiler.stopSampling');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
};

function valueOf(flag: string): string | undefined {
  const at = process.argv.indexOf(flag);
  return at < 0 ? undefined : process.argv[at + 1];
}

void main();
