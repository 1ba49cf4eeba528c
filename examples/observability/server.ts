/**
 * Logs and metrics from the idempotency events: `onEvent` writes a JSON log line per event (with the request's
 * trace id) and feeds `createOtelObserver` from `trpc-idempotency/otel` (counters, duration histograms, span events).
 * Run: `npx tsx examples/observability/server.ts`, send the same key twice:
 *   curl -X POST -H 'content-type: application/json' -H 'idempotency-key: order-1' \
 *     -d '{"json":{"item":"book","quantity":1}}' http://127.0.0.1:3000/order.create
 * and watch the log lines (claimed, completed, then replayed); the metrics are printed every 10 s.
 */
import { createServer } from 'node:http';
import type { Meter, Tracer } from '@opentelemetry/api';
import { context, metrics, trace } from '@opentelemetry/api';
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import { createOtelObserver } from 'trpc-idempotency/otel';
import { listenLocal } from '../shared/listen';
import { createOrderApp, isMain, userIdFrom } from '../shared/orders';
import { asyncLocalStorageContextManager } from './asyncContext';
import { eventLogRecord } from './logEvent';

export interface ObservabilityOptions {
  /** Where log lines go; stdout by default. */
  log?: (line: string) => void;
  /** The meter for the idempotency metrics; the global MeterProvider's by default. */
  meter?: Meter;
  /** Starts the span of each request; the global TracerProvider's tracer by default. */
  tracer?: Tracer;
}

export const start = async (port = 3000, options: ObservabilityOptions = {}) => {
  const { log = (line: string) => console.log(line), tracer = trace.getTracer('orders-example') } = options;
  const otel = createOtelObserver({ meter: options.meter });
  const { router, orders } = createOrderApp({
    // The wiring: one callback, two consumers. onEvent runs inside the request, so the active span is the request's.
    onEvent: (event) => {
      log(JSON.stringify(eventLogRecord(event)));
      otel(event);
    },
  });
  const handler = createHTTPHandler({
    router,
    createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers['x-user-id']) }),
    responseMeta: idempotencyResponseMeta(),
  });
  // One active span per request. In your app @opentelemetry/instrumentation-http does this; here it is by hand.
  const server = createServer((req, res) =>
    tracer.startActiveSpan(`${req.method} ${req.url}`, (span) => {
      res.once('close', () => span.end());
      void handler(req, res);
    }),
  );
  return { ...(await listenLocal(server, port)), orders };
};

/** What NodeSDK (`@opentelemetry/sdk-node`) sets up in an app: a context manager and the global providers. */
const startTelemetry = () => {
  context.setGlobalContextManager(asyncLocalStorageContextManager());
  // Spans are recorded (their ids go into the log lines); add a span processor with your exporter to ship them.
  trace.setGlobalTracerProvider(new BasicTracerProvider());
  const reader = new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 10_000 });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
};

if (isMain(import.meta.url)) {
  startTelemetry();
  const { url } = await start(Number(process.env.PORT ?? 3000));
  console.log(`observability example listening on ${url}`);
}
