// tap's `before` and `after` program (see "tap" in package.json): stops the Cassandra that
// test/helpers/cassandra.ts shares between the test files of one tap run. The node is
// keyed by the tap runner's pid (this program's parent, as it is every test file's): after
// a run its own node is stopped, and at any time nodes of runners that are gone (a run
// that was interrupted) are stopped too. Nodes of other live runs are left alone.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tapDir = path.join(repo, '.tap');
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

for (const name of existsSync(tapDir) ? readdirSync(tapDir) : []) {
  const m = /^shared-cassandra-(\d+)\.json$/.exec(name);
  if (!m) continue;
  const runner = Number(m[1]);
  if (runner !== process.ppid && alive(runner)) continue;
  const state = path.join(tapDir, name);
  const { dir } = JSON.parse(readFileSync(state, 'utf8'));
  // stop.sh signals the pid only if it is still the Cassandra of that directory.
  const r = spawnSync('bash', [path.join(repo, 'deploy', 'cassandra', 'stop.sh'), dir, '--now'], { stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = 1;
  rmSync(dir, { recursive: true, force: true });
  rmSync(state, { force: true });
  rmSync(`${state}.lock`, { recursive: true, force: true });
}
