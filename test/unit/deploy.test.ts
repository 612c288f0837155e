import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../config/load.js';

/**
 * The deployment kit cannot be run here (no Docker, no cluster), so it is
 * checked for what can be: every file is valid YAML, the config it ships
 * loads through Lacquer's own validation, and the pieces point at each
 * other (probes at the admin port, Prometheus at every instance).
 */

const DEPLOY = fileURLToPath(new URL('../../deploy', import.meta.url));
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function documents(path: string): Doc[] {
  // Compose files use merge keys (<<: *anchor), a YAML 1.1 feature Compose supports.
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) expect(doc.errors, `${path}: ${doc.errors.map((e) => e.message).join('; ')}`).toEqual([]);
  return list.map((doc) => doc.toJS() as Doc);
}

const kube = (name: string) => documents(join(DEPLOY, 'kubernetes', name));

describe('the deployment kit', () => {
  it('is valid YAML throughout', () => {
    const files = [...readdirSync(DEPLOY).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml')).map((f) => join(DEPLOY, f)), ...readdirSync(join(DEPLOY, 'kubernetes')).map((f) => join(DEPLOY, 'kubernetes', f))];
    expect(files.length).toBeGreaterThanOrEqual(9);
    for (const file of files) expect(documents(file).length).toBeGreaterThan(0);
  });

  it('compose: three instances on one Redis, each on its own host ports, all scraped by Prometheus', () => {
    const [compose] = documents(join(DEPLOY, 'docker-compose.yml'));
    const services = compose!['services'] as Record<string, Doc>;
    const instances = Object.keys(services).filter((name) => name.startsWith('lacquer-'));
    expect(instances).toHaveLength(3);
    for (const name of instances) {
      expect(services[name]!['environment']).toMatchObject({ LACQUER_REDIS_URL: 'redis://redis:6379', LACQUER_ORIGIN: 'http://origin:3000' });
    }
    const hostPorts = instances.flatMap((name) => (services[name]!['ports'] as string[]).map((p) => p.split(':')[0]));
    expect(new Set(hostPorts).size).toBe(6);
    expect(services['redis']!['command']).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['redis', 'origin', 'prometheus']));
    const [prometheus] = documents(join(DEPLOY, 'prometheus.yml'));
    expect(prometheus!['scrape_configs'][0].static_configs[0].targets).toEqual(instances.map((name) => `${name}:8081`));
  });

  it('kubernetes: the ConfigMap holds a config Lacquer accepts, with Redis on', () => {
    const [configMap] = kube('configmap.yaml');
    const dir = mkdtempSync(join(tmpdir(), 'lacquer-deploy-'));
    writeFileSync(join(dir, 'proxy.config.yaml'), configMap!['data']['proxy.config.yaml']);
    const { config } = loadConfig({ cwd: dir, env: {}, argv: [] });
    expect(config.redis.url).toMatch(/^redis:\/\//);
    expect(config.admin.port).toBe(8081);
  });

  it('kubernetes: probes use the admin port, and the budget, autoscaler and services select the Deployment', () => {
    const [deployment] = kube('deployment.yaml');
    const labels = deployment!['spec']['template']['metadata']['labels'];
    const container = deployment!['spec']['template']['spec']['containers'][0];
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(container.startupProbe.httpGet.port).toBe('admin');
    expect(container.ports).toEqual(expect.arrayContaining([{ name: 'admin', containerPort: 8081 }, { name: 'http', containerPort: 8080 }]));
    expect(container.resources.requests.cpu).toBeDefined();
    const [pdb] = kube('pdb.yaml');
    expect(pdb!['spec']['selector']['matchLabels']).toEqual(labels);
    const [hpa] = kube('hpa.yaml');
    expect(hpa!['spec']['scaleTargetRef']).toMatchObject({ kind: 'Deployment', name: deployment!['metadata']['name'] });
    for (const service of kube('service.yaml')) expect(service['spec']['selector']).toEqual(labels);
    const [kustomization] = kube('kustomization.yaml');
    const manifests = readdirSync(join(DEPLOY, 'kubernetes')).filter((f) => f !== 'kustomization.yaml' && f !== 'secret.example.yaml');
    expect([...(kustomization!['resources'] as string[])].sort()).toEqual(manifests.sort());
  });
});
