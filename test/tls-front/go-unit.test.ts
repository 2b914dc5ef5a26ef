/**
 * The front's Go unit tests (native/tls-front/*_test.go: how it cuts the client's bytes into
 * TLS records for crypto/tls), run with the same Go that builds it.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../native/tls-front/', import.meta.url));

t.test('go test ./... in native/tls-front passes', async (t) => {
  let out = '';
  let failed = false;
  try {
    out = execFileSync('go', ['test', '-count=1', './...'], { cwd: dir, encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    failed = true;
    const e = err as { stdout?: string; stderr?: string; message: string };
    out = `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message;
  }
  t.notOk(failed, out.trim());
  t.match(out, /^ok\s+kindred\/tls-front/m, 'the package was tested');
});
