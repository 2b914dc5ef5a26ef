/**
 * Work-arounds for cassandra-driver 4.x bugs around a Cassandra outage. Three of them; the
 * first two leave pools that reconnect forever and keep the process alive after
 * `Client#shutdown()`, the third crashes the process:
 *
 * 1. After every node was down, the control connection re-resolves the contact points and
 *    replaces their Host objects without shutting the old ones down; their pools then retry
 *    forever. Such a replaced host is shut down here. (A host the cluster really removed is
 *    shut down by the driver itself and is no longer in the map.)
 * 2. `shutdown()` shuts down the hosts it knows at that moment and tells the control connection
 *    to stop, but a reconnection of the control connection already in flight (the one that
 *    replaces the hosts, above) carries on: it opens a connection, creates a new Host and puts
 *    the connection in that host's pool. Nothing shuts that host down: its connection
 *    heartbeats while Cassandra is up, and once Cassandra goes away its pool reconnects forever.
 *    (Reproduced with a proxy that plays the outage: a Session closed a few hundred ms after
 *    Cassandra came back kept a socket open, then retried every 2 s forever.) So once closing,
 *    any host added and any connection the control connection reports is shut down, and after
 *    `shutdown()` every host the driver knows by then is shut down too.
 * 3. Two reconnections of the control connection can overlap (a retry timer's, and one started
 *    because the connection the first had just opened closed again: a Cassandra that just
 *    restarted on a loaded machine). The second clears `host` while the first still runs, whose
 *    next step then throws (TypeError: Cannot read properties of null (reading 'once'), in
 *    _setHealthListeners) inside a promise nobody awaits: an unhandled rejection, which ends the
 *    process (seen once in 8 runs of test/cluster/outage.test.ts under load). The overlapping
 *    one finishes the reconnection; the failed one's error goes to the driver's `log` event,
 *    and if no connection results, another reconnection is scheduled.
 *
 * Uses driver internals (Host#shutdown, the control connection, its `_refresh` and `newConnection`),
 * as the driver offers no public way to do this; checked against cassandra-driver 4.10.0.
 */
import type cassandra from 'cassandra-driver';

interface InternalHost {
  shutdown(waitForPending: boolean): Promise<void>;
}
interface InternalConnection {
  close(): void;
}
interface InternalControlConnection {
  connection: InternalConnection | null;
  _isShuttingDown: boolean;
  _refresh(...args: unknown[]): Promise<void>;
  on(event: 'newConnection', fn: (err: unknown, connection?: InternalConnection, host?: InternalHost) => void): void;
}

/** How long after a failed overlapping reconnection another is tried, if none succeeded meanwhile. */
const RETRY_REFRESH_MS = 1000;

function shutDown(host: unknown): void {
  if (!host) return;
  void Promise.resolve()
    .then(() => (host as InternalHost).shutdown(false))
    .catch(() => undefined);
}

export class DriverWorkarounds {
  private closing = false;

  constructor(private readonly client: cassandra.Client) {
    this.guardRefresh();
    client.on('hostRemove', (old: cassandra.Host) => {
      const current = client.hosts?.get(old.address);
      if (current && current !== old) shutDown(old);
    });
    client.on('hostAdd', (host: cassandra.Host) => {
      if (this.closing) shutDown(host);
    });
    this.control()?.on('newConnection', (err, connection, host) => {
      if (!this.closing || err) return;
      shutDown(host);
      connection?.close();
    });
  }

  /** Call before `client.shutdown()`: from then on whatever the driver starts is shut down. */
  beginClose(): void {
    this.closing = true;
  }

  /** Call after `client.shutdown()`: shuts down hosts that appeared while it ran. */
  afterShutdown(): void {
    for (const host of this.client.hosts?.values() ?? []) shutDown(host);
    this.control()?.connection?.close();
  }

  /** 3: the control connection's reconnection never rejects into the void. */
  private guardRefresh(): void {
    const control = this.control();
    if (!control || typeof control._refresh !== 'function') return;
    const refresh = control._refresh;
    // an own property: the driver's calls (its retry timer, its health listeners, its recursion) all go through `this._refresh`
    control._refresh = (...args: unknown[]): Promise<void> =>
      refresh.apply(control, args).catch((err: unknown) => {
        // through the driver's own log event, where its other warnings go
        this.client.emit('log', 'warning', 'ControlConnection', `reconnection failed (another one carries on): ${String(err)}`, err);
        const retry = setTimeout(() => {
          if (!control._isShuttingDown && !this.closing && !control.connection) void control._refresh();
        }, RETRY_REFRESH_MS);
        retry.unref();
      });
  }

  private control(): InternalControlConnection | undefined {
    return (this.client as unknown as { controlConnection?: InternalControlConnection }).controlConnection;
  }
}
