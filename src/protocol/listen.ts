/** Shared by the TCP listeners (native protocol, XMPP). */
import type net from 'node:net';

/** Listens on host:port (0 = any free port) and resolves with the bound port, or rejects (e.g. EADDRINUSE). */
export function listenTcp(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
