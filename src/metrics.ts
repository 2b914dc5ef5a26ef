/** Prometheus metrics for one node (served at GET /metrics). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'kindred_connections', help: 'open client connections', labelNames: ['transport'], registers: [this.registry] });
  readonly commands = new Histogram({
    name: 'kindred_command_duration_seconds',
    help: 'time to run a command, by operation and outcome',
    labelNames: ['op', 'outcome'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly messages = new Counter({ name: 'kindred_messages_total', help: 'chat messages persisted', registers: [this.registry] });
  readonly events = new Counter({ name: 'kindred_events_pushed_total', help: 'events pushed to sessions', labelNames: ['type'], registers: [this.registry] });
  readonly disconnects = new Counter({ name: 'kindred_disconnects_total', help: 'connections closed by the server, by reason', labelNames: ['reason'], registers: [this.registry] });

  constructor(sources: { actors: () => number; mailboxDepth: () => number }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'kindred_process_' });
    new Gauge({ name: 'kindred_actors_active', help: 'active per-user actors on this node', registers: [this.registry], collect() { this.set(sources.actors()); } });
    new Gauge({ name: 'kindred_mailbox_depth', help: 'messages waiting in actor mailboxes on this node', registers: [this.registry], collect() { this.set(sources.mailboxDepth()); } });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
