/** Log in or create an account (one account for Tindr and the book store). */
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { navigate, useLocation } from './router.js';
import { session } from './session.js';
import { ErrorText } from './ui/notices.js';
import { Page } from './ui/page.js';

interface AuthResult {
  userId: string;
  token: string;
  expiresAt: number;
}

export function AuthPage() {
  const { query } = useLocation();
  const [mode, setMode] = useState<'login' | 'register'>(query.get('mode') === 'register' ? 'register' : 'login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const next = query.get('next') ?? (mode === 'register' ? '/tindr/profile' : '/tindr');

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await api<AuthResult>('POST', mode === 'register' ? '/v1/register' : '/v1/login', { json: { username, password }, anonymous: true });
      session.set({ ...result, username: username.trim().toLowerCase() });
      navigate(next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const registering = mode === 'register';
  return (
    <Page title={registering ? 'Create an account' : 'Log in'}>
      <div class="tabs" role="group" aria-label="Log in or create an account">
        <button type="button" aria-pressed={!registering} onClick={() => setMode('login')}>
          Log in
        </button>
        <button type="button" aria-pressed={registering} onClick={() => setMode('register')}>
          Create an account
        </button>
      </div>
      <form class="card form" onSubmit={submit} aria-describedby={error ? 'auth-error' : undefined}>
        <label>
          Username
          <input
            name="username"
            autoComplete="username"
            required
            minLength={3}
            maxLength={32}
            pattern="[A-Za-z0-9][A-Za-z0-9._\-]*"
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            aria-describedby="username-hint"
          />
        </label>
        {registering && (
          <p class="hint" id="username-hint">
            3–32 letters, digits, dots, dashes or underscores.
          </p>
        )}
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={registering ? 'new-password' : 'current-password'}
            required
            minLength={8}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {registering && <p class="hint">At least 8 characters.</p>}
        <ErrorText error={error} id="auth-error" />
        <button type="submit" class="primary" disabled={busy}>
          {registering ? 'Create account' : 'Log in'}
        </button>
      </form>
    </Page>
  );
}

export async function logout(): Promise<void> {
  try {
    await api('POST', '/v1/logout');
  } catch {
    // the token is dropped locally either way
  }
  session.set(null);
  navigate('/');
}
