/**
 * A lean JSON-over-HTTP client for open-loop REST load: node:http with one keep-alive agent
 * per client. Not fetch: on the shared two cores the load generator's CPU per request
 * matters, and undici's fetch costs several times more than a plain http.request.
 */
import http from 'node:http';

export interface JsonAnswer {
  status: number;
  /** the parsed body; `{ error: { code: 'not JSON: …' } }` when it was not JSON */
  json: any;
}

export class JsonHttp {
  private readonly agent: http.Agent;
  private readonly url: URL;

  constructor(base: string, maxSockets = 256) {
    this.url = new URL(base);
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  get(path: string, headers: Record<string, string> = {}): Promise<JsonAnswer> {
    return this.request('GET', path, headers);
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer> {
    return this.request('POST', path, { 'content-type': 'application/json', ...headers }, JSON.stringify(body));
  }

  request(method: string, path: string, headers: Record<string, string>, body?: string): Promise<JsonAnswer> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          hostname: this.url.hostname,
          port: this.url.port,
          path,
          method,
          agent: this.agent,
          headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = { error: { code: `not JSON: ${text.slice(0, 80)}` } };
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
