/**
 * TLS material for STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368): `config.tls` when set,
 * otherwise a self-signed certificate for `config.domain`, made on first start and kept in
 * `<dataDir>/xmpp-cert.pem` and `xmpp-key.pem` (ECDSA P-256, ten years). Clients will not trust
 * it without being told to; it is there so that passwords never cross the network in clear.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';
import type { KindredConfig } from '../../config.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  secureContext: tls.SecureContext;
  selfSigned: boolean;
}

export async function loadTlsMaterial(config: KindredConfig): Promise<TlsMaterial> {
  if (config.tls) {
    const cert = readFileSync(config.tls.certFile, 'utf8');
    const key = readFileSync(config.tls.keyFile, 'utf8');
    return { cert, key, secureContext: tls.createSecureContext({ cert, key }), selfSigned: false };
  }
  const certFile = join(config.dataDir, 'xmpp-cert.pem');
  const keyFile = join(config.dataDir, 'xmpp-key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const domain = config.domain;
    const san = isIP(domain) ? { type: 7 as const, ip: domain } : { type: 2 as const, value: domain };
    const pems = await generate([{ name: 'commonName', value: domain }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 3650 * 24 * 3600 * 1000),
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [san] },
      ],
    });
    writeFileSync(keyFile, pems.private, { mode: 0o600 });
    writeFileSync(certFile, pems.cert);
  }
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  return { cert, key, secureContext: tls.createSecureContext({ cert, key }), selfSigned: true };
}
