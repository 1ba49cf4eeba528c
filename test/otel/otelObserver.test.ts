import { readFileSync } from 'node:fs';
import type { Span } from '@opentelemetry/api';
import { metrics } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import type { IdempotencyEvent } from '../../src/index';
import { ATTR, createOtelObserver, METRIC, OTEL_SCOPE } from '../../src/otel/index';
import { createManualClock } from '../helpers/manualClock';
import type { ObservedRouter, ObservedServerOptions } from './server';
import { CLAIM_MS, PROCEDURE_MS, startObservedServer } from './server';
import { counterPoints, createTelemetry, histogramPoints, sorted } from './telemetry';

type Telemetry = ReturnType<typeof createTelemetry>;
let telemetry: Telemetry;
const closing: (() => Promise<void>)[] = [];
beforeEach(() => {
  telemetry = createTelemetry();
});
afterEach(async () => {
  await Promise.all(closing.splice(0).map((close) => close()));
  await telemetry.shutdown();
  metrics.disable();
});

/** The observed app on loopback and a real @trpc/client for it; `key` picks the call's idempotency key. */
const start = async (options: Partial<ObservedServerOptions> = {}) => {
  const observe = createOtelObserver({ meter: telemetry.meterProvider.getMeter('test') });
  const server = await startObservedServer({ onEvent: observe, tracer: telemetry.tracer, clock: createManualClock(), ...options });
  closing.push(server.close);
  const client = createTRPCClient<ObservedRouter>({
    links: [idempotencyLink(), httpLink({ url: server.url, transformer: superjson, headers: idempotencyHeaders })],
  });
  const key = (idempotencyKey: string) => ({ context: { idempotencyKey } });
  return { server, client, key };
};

/** The error a call failed with. */
const failure = (call: Promise<unknown>) =>
  call.then(
    () => expect.fail('the call succeeded'),
    (error: unknown) => (error instanceof TRPCClientError ? error : expect.fail(String(error))),
  );

/** The request span of each finished request to `path`, in order. */
const requestSpans = (path: string): ReadableSpan[] => telemetry.spans().filter((span) => span.name === `POST /${path}`);

describe('createOtelObserver', () => {
  it('counts executed, replayed, conflict, mismatch and released calls per procedure', async () => {
    const { server, client, key } = await start();
    await client.create.mutate({ n: 1 }, key('k-1'));
    await client.create.mutate({ n: 1 }, key('k-1'));
    await client.create.mutate({ n: 1 }, key('k-1'));
    expect((await failure(client.create.mutate({ n: 2 }, key('k-1')))).data?.code).toBe('UNPROCESSABLE_CONTENT');
    const slow = client.slow.mutate({ n: 1 }, key('k-2'));
    await server.slowStarted;
    expect((await failure(client.slow.mutate({ n: 1 }, key('k-2')))).data?.code).toBe('CONFLICT');
    server.openGate();
    await slow;
    await failure(client.fail.mutate({ n: 1 }, key('k-3')));

    const calls = counterPoints((await telemetry.collect()).get(METRIC.calls));
    expect(calls).toEqual(
      sorted([
        { [ATTR.procedure]: 'create', [ATTR.outcome]: 'executed', [ATTR.result]: 'ok', value: 1 },
        { [ATTR.procedure]: 'create', [ATTR.outcome]: 'replayed', [ATTR.result]: 'ok', value: 2 },
        { [ATTR.procedure]: 'create', [ATTR.outcome]: 'mismatch', value: 1 },
        { [ATTR.procedure]: 'slow', [ATTR.outcome]: 'conflict', value: 1 },
        { [ATTR.procedure]: 'slow', [ATTR.outcome]: 'executed', [ATTR.result]: 'ok', value: 1 },
        { [ATTR.procedure]: 'fail', [ATTR.outcome]: 'released', [ATTR.errorType]: 'INTERNAL_SERVER_ERROR', value: 1 },
      ]),
    );
    expect(server.runs).toEqual({ create: 1, slow: 1, fail: 1 });
  });

  it('records claim and procedure durations in seconds', async () => {
    const { client, key } = await start();
    await client.create.mutate({ n: 1 }, key('d-1'));
    await client.create.mutate({ n: 1 }, key('d-2'));
    await client.create.mutate({ n: 1 }, key('d-2')); // a replay: no claim acquired, nothing run

    const collected = await telemetry.collect();
    const procedure = collected.get(METRIC.procedureDuration);
    expect(procedure?.descriptor.unit).toBe('s');
    expect(histogramPoints(procedure)).toEqual([
      { [ATTR.procedure]: 'create', [ATTR.outcome]: 'executed', [ATTR.result]: 'ok', count: 2, sum: (2 * PROCEDURE_MS) / 1000 },
    ]);
    const claim = collected.get(METRIC.claimDuration);
    expect(claim?.descriptor.unit).toBe('s');
    expect(histogramPoints(claim)).toEqual([
      { [ATTR.procedure]: 'create', [ATTR.takeover]: false, count: 2, sum: (2 * CLAIM_MS) / 1000 },
    ]);
  });

  it('adds each event to the active request span, with the key hash and never the key', async () => {
    const { client, key } = await start();
    const secret = 'secret-key-4b1d';
    await client.create.mutate({ n: 1 }, key(secret));
    await client.create.mutate({ n: 1 }, key(secret));

    const [executed, replayed] = requestSpans('create');
    expect(executed?.events.map((event) => event.name)).toEqual(['trpc_idempotency.claimed', 'trpc_idempotency.completed']);
    expect(replayed?.events.map((event) => event.name)).toEqual(['trpc_idempotency.replayed']);
    const keyHash = executed?.attributes[ATTR.keyHash];
    expect(keyHash).toMatch(/^[\w-]{20,}$/);
    expect(executed?.attributes).toMatchObject({ [ATTR.status]: 'executed' });
    expect(replayed?.attributes).toMatchObject({ [ATTR.status]: 'replayed', [ATTR.keyHash]: keyHash });
    expect(executed?.events[1]?.attributes).toMatchObject({
      [ATTR.procedure]: 'create',
      [ATTR.keyHash]: keyHash,
      'trpc_idempotency.outcome': 'ok',
      'trpc_idempotency.duration_ms': PROCEDURE_MS,
    });
    expect(JSON.stringify(telemetry.spans().map((span) => [span.attributes, span.events]))).not.toContain(secret);
  });

  it('counts a store error by operation and records it on the span', async () => {
    const claim = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6390'));
    const { client, key } = await start({ claim });
    expect((await failure(client.create.mutate({ n: 1 }, key('s-1')))).data?.code).toBe('SERVICE_UNAVAILABLE');

    const collected = await telemetry.collect();
    expect(counterPoints(collected.get(METRIC.storeErrors))).toEqual([
      { [ATTR.procedure]: 'create', [ATTR.operation]: 'claim', [ATTR.failedOpen]: false, [ATTR.errorType]: 'Error', value: 1 },
    ]);
    const [span] = requestSpans('create');
    expect(span?.events.map((event) => event.name)).toEqual(['trpc_idempotency.store_error', 'exception']);
    expect(span?.events[1]?.attributes).toMatchObject({ 'exception.message': 'connect ECONNREFUSED 127.0.0.1:6390' });
  });

  it('reports a fail-open call as a store error that failed open', async () => {
    const claim = () => Promise.reject(new Error('down'));
    const { server, client, key } = await start({ claim, onStoreError: 'fail-open' });
    await client.create.mutate({ n: 1 }, key('o-1'));
    expect(server.runs.create).toBe(1);
    expect(counterPoints((await telemetry.collect()).get(METRIC.storeErrors))).toEqual([
      { [ATTR.procedure]: 'create', [ATTR.operation]: 'claim', [ATTR.failedOpen]: true, [ATTR.errorType]: 'Error', value: 1 },
    ]);
  });

  it('counts every event by type, event types it does not know included', async () => {
    const observe = createOtelObserver({ meter: telemetry.meterProvider.getMeter('test'), span: false });
    const event = (fields: Record<string, unknown>) => ({ path: 'order.create', keyHash: 'h', ...fields }) as unknown as IdempotencyEvent;
    observe(event({ type: 'unguarded', reason: 'no_key' }));
    observe(event({ type: 'lease_lost', phase: 'heartbeat' }));
    observe(event({ type: 'brand_new', durationMs: 'soon', weight: 3 }));

    const collected = await telemetry.collect();
    expect(counterPoints(collected.get(METRIC.calls))).toEqual([
      { [ATTR.procedure]: 'order.create', [ATTR.outcome]: 'unguarded', [ATTR.reason]: 'no_key', value: 1 },
    ]);
    expect(counterPoints(collected.get(METRIC.events))).toEqual(
      sorted([
        { [ATTR.procedure]: 'order.create', [ATTR.event]: 'brand_new', value: 1 },
        { [ATTR.procedure]: 'order.create', [ATTR.event]: 'lease_lost', [ATTR.phase]: 'heartbeat', value: 1 },
        { [ATTR.procedure]: 'order.create', [ATTR.event]: 'unguarded', [ATTR.reason]: 'no_key', value: 1 },
      ]),
    );
  });

  it('never throws into the caller, whatever it is given', () => {
    const throwing = createOtelObserver({
      meter: telemetry.meterProvider.getMeter('test'),
      span: () => {
        throw new Error('span lookup failed');
      },
    });
    expect(() => throwing({ type: 'mismatch', path: 'p', keyHash: 'h' })).not.toThrow();
    const observe = createOtelObserver({ meter: telemetry.meterProvider.getMeter('test') });
    expect(() => observe(null as never)).not.toThrow();
    expect(() => observe({ type: 'store_error', operation: 'claim', error: undefined, failedOpen: false, path: 'p', keyHash: 'h' })).not.toThrow();
  });

  it("takes the span from onEvent's second argument when told how", () => {
    const span = telemetry.tracer.startSpan('job');
    const observe = createOtelObserver({ meter: telemetry.meterProvider.getMeter('test'), span: (_event, info) => (info.ctx as { span: Span }).span });
    observe({ type: 'conflict', retryAfterMs: 100, waitedMs: 0, path: 'job.run', keyHash: 'h' }, { ctx: { span } });
    span.end();
    const [job] = telemetry.spans();
    expect(job?.events.map((event) => [event.name, event.attributes?.['trpc_idempotency.retry_after_ms']])).toEqual([['trpc_idempotency.conflict', 100]]);
    expect(job?.attributes[ATTR.status]).toBe('conflict');
  });

  it('uses the global MeterProvider registered after the observer was built', async () => {
    const observe = createOtelObserver();
    // As in an app that builds its router at import time and starts the OpenTelemetry SDK afterwards.
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    observe({ type: 'mismatch', path: 'p', keyHash: 'h' });
    const collected = await telemetry.collect();
    expect(counterPoints(collected.get(METRIC.calls))).toEqual([{ [ATTR.procedure]: 'p', [ATTR.outcome]: 'mismatch', value: 1 }]);
  });

  it('names its meter trpc-idempotency with the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(OTEL_SCOPE).toEqual({ name: 'trpc-idempotency', version });
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    createOtelObserver()({ type: 'mismatch', path: 'p', keyHash: 'h' });
    expect((await telemetry.collect()).scopes).toEqual([OTEL_SCOPE]);
  });
});
