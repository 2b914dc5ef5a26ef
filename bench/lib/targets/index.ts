/** `--target kindred,prosody,ejabberd`: start a server under test by name. */
import { startEjabberd } from './ejabberd.js';
import { startKindred } from './kindred.js';
import { startProsody } from './prosody.js';
import { startKindredCluster } from './kindred-cluster.js';
import { TARGETS, type TargetHandle, type TargetName } from './types.js';

export function parseTargets(raw: string): TargetName[] {
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new Error('--target needs at least one of ' + TARGETS.join(', '));
  for (const n of names) if (!TARGETS.includes(n as TargetName)) throw new Error(`unknown target "${n}" (known: ${TARGETS.join(', ')})`);
  return names as TargetName[];
}

export interface TargetOptions {
  /** Kindred: --server-entry */
  entry?: string;
  /** Kindred: --server-config JSON merged over the bench config */
  config?: Record<string, unknown>;
  keepData?: boolean;
  /** Kindred: start with the inspector (forced GC before memory readings) */
  inspect?: boolean;
  /** Prosody: where mod_mam keeps the archive (sql = SQLite, the default; memory) */
  prosodyArchive?: 'sql' | 'memory';
}

export async function startTarget(name: TargetName, o: TargetOptions): Promise<TargetHandle & { inspectorUrl?: string }> {
  switch (name) {
    case 'kindred':
      return startKindred(o);
    case 'prosody':
      return startProsody({ keepData: o.keepData, archive: o.prosodyArchive });
    case 'ejabberd':
      return startEjabberd(o);
    case 'kindred-cluster':
      return startKindredCluster({ config: o.config, keepData: o.keepData });
  }
}
