/**
 * A tiny flag parser for the bench CLI: `--name value`, `--name=value` and bare
 * boolean `--flag`. Unknown flags are an error, so a typo never silently runs the
 * default configuration.
 */
export type Flags = Record<string, string | boolean>;

export function parseFlags(argv: string[], booleans: ReadonlySet<string> = new Set()): { positional: string[]; flags: Flags } {
  const positional: string[] = [];
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (eq >= 0) flags[name] = arg.slice(eq + 1);
    else if (booleans.has(name)) flags[name] = true;
    else {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) flags[name] = true;
      else {
        flags[name] = value;
        i++;
      }
    }
  }
  return { positional, flags };
}

/** Reads typed options out of parsed flags, remembering which names were known. */
export class Options {
  private readonly known = new Set<string>(['server-entry', 'server-config', 'keep-data', 'help']);

  constructor(private readonly flags: Flags) {}

  num(name: string, def: number): number {
    this.known.add(name);
    const raw = this.flags[name];
    if (raw === undefined) return def;
    const n = typeof raw === 'string' ? Number(raw) : NaN;
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${String(raw)}"`);
    return n;
  }

  str<T extends string>(name: string, def: T, allowed?: readonly T[]): T {
    this.known.add(name);
    const raw = this.flags[name];
    if (raw === undefined) return def;
    if (typeof raw !== 'string') throw new Error(`--${name} needs a value`);
    if (allowed && !allowed.includes(raw as T)) throw new Error(`--${name} must be one of ${allowed.join(', ')}`);
    return raw as T;
  }

  bool(name: string): boolean {
    this.known.add(name);
    const raw = this.flags[name];
    return raw === true || raw === 'true' || raw === '1';
  }

  /** `--server-config '{"limits":{...}}'`: JSON merged over the bench's server config. */
  serverConfig(): Record<string, unknown> {
    const raw = this.flags['server-config'];
    if (raw === undefined) return {};
    if (typeof raw !== 'string') throw new Error('--server-config needs a JSON value');
    const v = JSON.parse(raw) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('--server-config must be a JSON object');
    return v as Record<string, unknown>;
  }

  /** Throws on any flag no scenario asked for. */
  checkUnknown(): void {
    for (const name of Object.keys(this.flags)) if (!this.known.has(name)) throw new Error(`unknown option --${name}`);
  }
}
