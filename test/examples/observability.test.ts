import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventLogRecord } from '../../examples/observability/logEvent';
import { start } from '../../examples/observability/server';
import { ATTR, METRIC } from '../../src/otel/index';
import { counterPoints, createTelemetry, sorted } from '../otel/telemetry';

const closing: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((close) => close()));
});

/** POSTs `order.create` with the key in `Idempotency-Key`, as httpLink does. */
const createOrder = async (baseUrl: string, key: string) => {
  const response = await fetch(`${baseUrl}/order.create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: superjson.stringify({ item: 'book', quantity: 1 }),
  });
  await response.arrayBuffer();
  return response.headers.get('idempotency-status');
};

describe('examples/observability', () => {
  it('logs each event as a JSON line with its trace id, and counts the calls', async () => {
    const telemetry = createTelemetry();
    closing.push(telemetry.shutdown);
    const lines: string[] = [];
    const server = await start(0, { log: (line) => lines.push(line), meter: telemetry.meterProvider.getMeter('example'), tracer: telemetry.tracer });
    closing.push(server.close);
    const key = `obs-${randomUUID()}`;
    expect(await createOrder(server.url, key)).toBe(JSON.stringify({ [key]: 'executed' }));
    expect(await createOrder(server.url, key)).toBe(JSON.stringify({ [key]: 'replayed' }));

    const records = lines.map((line) => JSON.parse(line) as EventLogRecord);
    expect(records.map((record) => [record.level, record.event.type])).toEqual([
      ['info', 'claimed'],
      ['info', 'completed'],
      ['info', 'replayed'],
    ]);
    expect(lines.join('\n')).not.toContain(key);
    // The first request's two lines share its trace; the replay is another request, another trace.
    const [claimed, completed, replayed] = records;
    expect(claimed?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(completed?.trace_id).toBe(claimed?.trace_id);
    expect(replayed?.trace_id).not.toBe(claimed?.trace_id);
    expect(replayed?.event.keyHash).toBe(claimed?.event.keyHash);

    expect(counterPoints((await telemetry.collect()).get(METRIC.calls))).toEqual(
      sorted([
        { [ATTR.procedure]: 'order.create', [ATTR.outcome]: 'executed', [ATTR.result]: 'ok', value: 1 },
        { [ATTR.procedure]: 'order.create', [ATTR.outcome]: 'replayed', [ATTR.result]: 'ok', value: 1 },
      ]),
    );
    expect(server.orders).toHaveLength(1);
  });

  it('runs as a script (tsx) and writes the log lines to stdout', async () => {
    const child = spawn('node_modules/.bin/tsx', ['examples/observability/server.ts'], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    closing.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill();
      await once(child, 'exit');
    });
    let output = '';
    /** Resolves with the first match of `pattern` in the script's output so far or to come. */
    const waitFor = (pattern: RegExp) =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const found = output.match(pattern);
          if (found) resolve(found);
        };
        child.stdout.on('data', check);
        child.stderr.on('data', check);
        child.once('exit', (code) => reject(new Error(`exited (${code}) before printing ${pattern}:\n${output}`)));
        check();
      });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

    const [, url] = (await waitFor(/listening on (http:\/\/\S+)/)) as [string, string];
    await createOrder(url, 'script-1');
    await createOrder(url, 'script-1');
    const [line] = await waitFor(/^\{.*"type":"replayed".*\}$/m);
    expect(JSON.parse(line)).toMatchObject({ level: 'info', event: { type: 'replayed', path: 'order.create' }, trace_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
  });
});
