/**
 * The production manifests (deploy/k8s/*.yaml, deploy/compose/compose.yaml) cannot be applied
 * here (no Docker, no kubectl), so they are parsed and checked for what matters: every Kindred
 * container has readiness and liveness probes on /healthz and resources, every other workload
 * has probes and resources too, references (Services → pods, PDBs, ConfigMaps, Secrets) resolve,
 * and the Kindred environment is made of settings src/config.ts really reads.
 */
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const K8S = path.join(ROOT, 'deploy/k8s');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

function loadK8s(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8'));
  return docs.map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return { ...d.toJS(), __file: file };
  });
}

const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const all: Obj[] = files.flatMap(loadK8s).filter((o) => o && o.kind);
const kustomization = parse(readFileSync(path.join(K8S, 'kustomization.yaml'), 'utf8'));
const byKind = (kind: string) => all.filter((o) => o.kind === kind);
const named = (kind: string, name: string) => all.find((o) => o.kind === kind && o.metadata?.name === name);
const workloads = () => all.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');

/** The KINDRED_* variables src/config.ts reads (its FLAGS table). */
const knownEnv = new Set([...readFileSync(path.join(ROOT, 'src/config.ts'), 'utf8').matchAll(/env: '(KINDRED_[A-Z0-9_]+)'/g)].map((m) => m[1]));

/** The port number a probe's `port` (number or container port name) points at. */
function portNumber(container: Obj, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p: Obj) => p.name === port)?.containerPort;
}

t.test('every manifest parses and the kustomization lists existing files', async (t) => {
  t.ok(all.length >= 15, `${all.length} objects`);
  for (const r of kustomization.resources as string[]) t.ok(existsSync(path.join(K8S, r)), `${r} exists`);
  for (const o of all) {
    t.ok(o.apiVersion && o.metadata?.name, `${o.__file}: ${o.kind} has apiVersion and name`);
    if (o.kind !== 'Namespace') t.equal(o.metadata.namespace, 'kindred', `${o.kind}/${o.metadata.name} in namespace kindred`);
  }
});

t.test('Kindred containers: probes on /healthz, resources, ports', async (t) => {
  const kindred = named('Deployment', 'kindred');
  t.ok(kindred, 'a kindred Deployment');
  const containers = workloads().flatMap((w) => w.spec.template.spec.containers.filter((c: Obj) => String(c.image).startsWith('kindred:')));
  t.ok(containers.length >= 1);
  for (const c of containers) {
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      t.equal(c[probe]?.httpGet?.path, '/healthz', `${probe} on /healthz`);
      t.equal(portNumber(c, c[probe]?.httpGet?.port), 8080, `${probe} on the HTTP port`);
    }
    t.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, 'cpu and memory requested');
    t.ok(c.resources?.limits?.memory, 'memory limited');
    t.same(c.ports.map((p: Obj) => p.containerPort).sort(), [5222, 5223, 7070, 8080]);
  }
  const pdb = byKind('PodDisruptionBudget').find((p) => p.spec.selector.matchLabels['app.kubernetes.io/name'] === 'kindred');
  t.ok(pdb, 'a PodDisruptionBudget for kindred');
  const publicPorts = named('Service', 'kindred-public').spec.ports.map((p: Obj) => p.targetPort).sort();
  t.same(publicPorts, ['http', 'native-tcp', 'xmpp', 'xmpps'], 'HTTP/WS, native TCP and both XMPP ports exposed');
});

t.test('every workload container has probes and resources; stateful ones have volumes and PDBs', async (t) => {
  for (const w of workloads()) {
    for (const c of w.spec.template.spec.containers) {
      const where = `${w.kind}/${w.metadata.name}/${c.name}`;
      t.ok(c.readinessProbe, `${where} readiness`);
      t.ok(c.livenessProbe, `${where} liveness`);
      t.ok(c.resources?.requests?.memory && c.resources?.limits?.memory, `${where} memory request and limit`);
    }
    for (const c of w.spec.template.spec.initContainers ?? []) t.ok(c.resources?.limits?.memory, `${w.metadata.name} init ${c.name} limited`);
  }
  const nats = named('StatefulSet', 'nats');
  t.equal(nats.spec.replicas, 3);
  t.ok(nats.spec.volumeClaimTemplates?.length, 'NATS keeps JetStream on a volume');
  t.match(named('ConfigMap', 'nats-config').data['nats.conf'], /jetstream \{/, 'JetStream on');
  t.equal(named('Service', nats.spec.serviceName).spec.clusterIP, 'None', 'NATS has a headless service');
  const cassandra = named('StatefulSet', 'cassandra');
  t.equal(cassandra.spec.replicas, 3);
  t.ok(cassandra.spec.volumeClaimTemplates?.length, 'Cassandra on volumes');
  t.equal(named('Service', cassandra.spec.serviceName).spec.clusterIP, 'None', 'Cassandra has a headless service');
  t.match(named('ConfigMap', 'cassandra-config').data['overrides.yaml'], /commitlog_sync: group/, 'group commit');
  for (const name of ['nats', 'cassandra']) {
    t.ok(
      byKind('PodDisruptionBudget').some((p) => p.spec.selector.matchLabels['app.kubernetes.io/name'] === name),
      `a PodDisruptionBudget for ${name}`,
    );
  }
});

t.test('references resolve', async (t) => {
  const pods = workloads().map((w) => w.spec.template.metadata.labels);
  const matches = (selector: Record<string, string>) => pods.some((labels) => Object.entries(selector).every(([k, v]) => labels[k] === v));
  for (const s of byKind('Service')) t.ok(matches(s.spec.selector), `Service ${s.metadata.name} selects pods`);
  for (const p of byKind('PodDisruptionBudget')) t.ok(matches(p.spec.selector.matchLabels), `PDB ${p.metadata.name} selects pods`);
  for (const w of workloads()) {
    t.same(w.spec.selector.matchLabels, Object.fromEntries(Object.keys(w.spec.selector.matchLabels).map((k) => [k, w.spec.template.metadata.labels[k]])), `${w.metadata.name} selector matches its template`);
    const spec = w.spec.template.spec;
    for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
      for (const ref of c.envFrom ?? []) {
        if (ref.configMapRef) t.ok(named('ConfigMap', ref.configMapRef.name), `ConfigMap ${ref.configMapRef.name}`);
        if (ref.secretRef) t.ok(named('Secret', ref.secretRef.name), `Secret ${ref.secretRef.name} (secret.example.yaml)`);
      }
      for (const m of c.volumeMounts ?? []) {
        const known = spec.volumes?.some((v: Obj) => v.name === m.name) || w.spec.volumeClaimTemplates?.some((v: Obj) => v.metadata.name === m.name);
        t.ok(known, `${w.metadata.name}/${c.name} mounts a declared volume ${m.name}`);
      }
    }
    for (const v of spec.volumes ?? []) {
      if (v.configMap) t.ok(named('ConfigMap', v.configMap.name), `volume ConfigMap ${v.configMap.name}`);
      if (v.secret) t.ok(named('Secret', v.secret.secretName), `volume Secret ${v.secret.secretName}`);
    }
  }
});

t.test("the Kindred environment is one Kindred's config understands", async (t) => {
  const cm = named('ConfigMap', 'kindred-config').data as Record<string, string>;
  const secret = named('Secret', 'kindred-secrets').stringData as Record<string, string>;
  for (const key of [...Object.keys(cm), ...Object.keys(secret)].filter((k) => k.startsWith('KINDRED_'))) {
    t.ok(knownEnv.has(key), `${key} is read by src/config.ts`);
  }
  const config = loadConfig([], { ...cm, ...secret, KINDRED_NODE_ID: 'kindred-abc' });
  t.equal(config.cluster.enabled, true);
  t.equal(config.host, '0.0.0.0', 'listens beyond loopback inside the pod');
  t.equal(config.httpPort, 8080);
  t.equal(config.cluster.cassandra.replicationFactor, 3);
  t.equal(config.cluster.natsUrls.length, 3, 'every NATS server');
  const dc = named('StatefulSet', 'cassandra').spec.template.spec.containers[0].env.find((e: Obj) => e.name === 'CASSANDRA_DC').value;
  t.equal(config.cluster.cassandra.localDataCenter, dc, "Kindred's local data center is Cassandra's");
  t.ok(config.tls, 'TLS from the kindred-tls secret');
});

t.test('compose: every service has a healthcheck; Kindred waits for healthy dependencies', async (t) => {
  const compose = parse(readFileSync(path.join(ROOT, 'deploy/compose/compose.yaml'), 'utf8'), { merge: true });
  const services = compose.services as Record<string, Obj>;
  t.same(Object.keys(services).sort(), ['cassandra', 'kindred-1', 'kindred-2', 'nats', 's3']);
  for (const [name, s] of Object.entries(services)) {
    t.ok(Array.isArray(s.healthcheck?.test) && s.healthcheck.test[0] === 'CMD', `${name} has a healthcheck`);
    t.ok(s.deploy?.resources?.limits?.memory, `${name} has a memory limit`);
  }
  const nodeIds = new Set<string>();
  for (const name of ['kindred-1', 'kindred-2']) {
    const s = services[name];
    t.match(s.healthcheck.test.join(' '), /127\.0\.0\.1:8080\/healthz/, `${name} healthcheck on /healthz`);
    for (const dep of ['nats', 'cassandra', 's3']) t.equal(s.depends_on[dep].condition, 'service_healthy', `${name} waits for ${dep}`);
    const env = s.environment as Record<string, string>;
    for (const key of Object.keys(env).filter((k) => k.startsWith('KINDRED_'))) t.ok(knownEnv.has(key), `${name}: ${key} is read by src/config.ts`);
    nodeIds.add(env.KINDRED_NODE_ID);
    t.equal(env.KINDRED_CLUSTER, 'true');
  }
  t.equal(nodeIds.size, 2, 'distinct node ids');
  t.match(services.nats.command.join(' '), /--jetstream/, 'NATS with JetStream');
});

t.test('the Dockerfile builds what the manifests run', async (t) => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  t.match(dockerfile, /^FROM node:20-slim/m);
  t.match(dockerfile, /npm ci/);
  t.match(dockerfile, /npm run build/);
  t.match(dockerfile, /ENTRYPOINT \["node", "dist\/cli\.js"\]/);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  t.ok(pkg.scripts.build, 'package.json has the build script the image runs');
});
