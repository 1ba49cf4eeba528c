/**
 * The real OpenTelemetry SDK, exporting into memory: a MeterProvider read on demand and a tracer whose ended
 * spans are kept. Tests assert on what an exporter would send, not on calls to a stand-in.
 */
import { context } from '@opentelemetry/api';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { asyncLocalStorageContextManager } from '../../examples/observability/asyncContext';

export const createTelemetry = () => {
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exports only when flushed: the test decides when metrics are read.
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  // Without a context manager no span is ever active: the one NodeSDK registers, in a few lines.
  context.setGlobalContextManager(asyncLocalStorageContextManager());

  /** Every metric recorded so far (cumulative), by name, and the instrumentation scopes that recorded them. */
  const collect = async () => {
    metricExporter.reset();
    await reader.forceFlush();
    const scopes = metricExporter.getMetrics().flatMap((resource) => resource.scopeMetrics);
    const metrics = scopes.flatMap((scope) => scope.metrics);
    return Object.assign(new Map<string, MetricData>(metrics.map((metric) => [metric.descriptor.name, metric])), {
      scopes: scopes.map(({ scope }) => ({ name: scope.name, version: scope.version })),
    });
  };

  return {
    meterProvider,
    tracer: tracerProvider.getTracer('test'),
    collect,
    spans: () => spanExporter.getFinishedSpans(),
    shutdown: async () => {
      context.disable();
      await Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()]);
    },
  };
};

/** Points in one order whatever their attributes' order: sort the expected list with it too. */
export const sorted = <T extends object>(points: T[]): T[] => {
  const canonical = (point: T) => JSON.stringify(Object.entries(point).sort(([a], [b]) => a.localeCompare(b)));
  return [...points].sort((a, b) => canonical(a).localeCompare(canonical(b)));
};

/** A counter's points as `{ ...attributes, value }`, sorted, for toEqual. */
export const counterPoints = (metric: MetricData | undefined) =>
  sorted((metric?.dataPoints ?? []).map((point) => ({ ...point.attributes, value: point.value as number })));

/** A histogram's points as `{ ...attributes, count, sum }`, sorted. */
export const histogramPoints = (metric: MetricData | undefined) =>
  sorted(((metric?.dataPoints ?? []) as DataPoint<Histogram>[]).map((point) => ({ ...point.attributes, count: point.value.count, sum: point.value.sum })));
