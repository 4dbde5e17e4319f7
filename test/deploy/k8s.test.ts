import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  buildKustomization,
  type Container,
  find,
  type KubeObject,
  modelModule,
  podSpec,
} from './kustomize.ts';
import { estuaryCheck, fluentBitDryRun, ROOT, readYaml, run, seconds } from './tools.ts';

/** k8s/: the kustomize base `kubectl apply -k k8s/` applies (README → Deployment). */
const objects = buildKustomization('k8s');
const deployment = find(objects, 'Deployment', 'estuary');
const pod = podSpec(deployment)!;
const estuary = pod.containers.find((c) => c.name === 'estuary')!;
const estuaryConfig = readYaml<{ service: { shutdown_timeout: string } }>('k8s/estuary/estuary.yaml');
/** The one Secret the user creates before applying (README says how): a TLS key is no example. */
const CREATED_BY_THE_USER = 'estuary-forward-tls';

/** Each ${VAR} of a container's env given a stand-in value, as the kubelet would give the real one. */
function envOf(container: Container): Record<string, string> {
  return Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? `test-${e.name}`]));
}

describe('k8s/ (kustomize base)', () => {
  it('has every object the deployment needs', () => {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(have, [
      'ClusterRole/estuary-fluent-bit',
      'ClusterRoleBinding/estuary-fluent-bit',
      'ConfigMap/estuary',
      'ConfigMap/estuary-dashboard',
      'ConfigMap/estuary-redis',
      'ConfigMap/fluent-bit',
      'DaemonSet/fluent-bit',
      'Deployment/estuary',
      'HorizontalPodAutoscaler/estuary',
      'Namespace/logging',
      'NetworkPolicy/estuary',
      'NetworkPolicy/estuary-redis',
      'PodDisruptionBudget/estuary',
      'PrometheusRule/estuary',
      'Secret/estuary',
      'Service/estuary',
      'Service/estuary-redis',
      'ServiceAccount/estuary',
      'ServiceAccount/fluent-bit',
      'ServiceMonitor/estuary',
      'StatefulSet/estuary-redis',
    ]);
  });

  it('every object validates against its API schema (kubernetes-models)', async () => {
    for (const obj of objects) {
      const module = (await import(modelModule(obj.apiVersion))) as Record<
        string,
        new (
          data: unknown,
        ) => { validate(): void }
      >;
      const Model = module[obj.kind];
      assert.ok(Model, `no model for ${obj.apiVersion} ${obj.kind}`);
      assert.doesNotThrow(() => new Model(obj).validate(), `${obj.kind}/${obj.metadata.name}`);
    }
  });

  it('no object has a field its API does not know (TypeScript excess-property check)', () => {
    // kubernetes-models' validate() lets unknown keys through; the API server (kubectl's
    // strict field validation) does not. The models' interfaces know every field, so each
    // object is written out as a literal of its interface and type-checked.
    const dir = mkdtempSync(join(tmpdir(), 'estuary-k8s-types-'));
    const lines = objects.map(
      (o, i) =>
        `export const o${i}: import('${modelModule(o.apiVersion)}/${o.kind}').I${o.kind} = ${JSON.stringify(o)};`,
    );
    writeFileSync(join(dir, 'objects.ts'), `${lines.join('\n')}\n`);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
          paths: { '*': [`${ROOT}node_modules/*`] },
        },
        files: ['objects.ts'],
      }),
    );
    const ran = run(`${ROOT}node_modules/.bin/tsc`, ['-p', join(dir, 'tsconfig.json')]);
    const named = ran.output.replace(/objects\.ts\((\d+),\d+\)/g, (_, line: string) => {
      const o = objects[Number(line) - 1]!;
      return `${o.kind}/${o.metadata.name}`;
    });
    assert.equal(ran.status, 0, named);
  });

  it('`kubectl kustomize` builds exactly these objects (where kubectl is installed)', (t) => {
    const ran = run('kubectl', ['kustomize', 'k8s']);
    if (ran.error?.code === 'ENOENT') {
      t.skip('kubectl is not installed: the objects were built by test/deploy/kustomize.ts only');
      return;
    }
    assert.equal(ran.status, 0, ran.output);
    // Generated ConfigMaps carry kustomize's content hash, in their names and references.
    const generated = objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name);
    const unhashed = ran.output.replace(/\b([a-z0-9-]+)-[a-z0-9]{10}$/gm, (whole, base: string) =>
      generated.includes(base) ? base : whole,
    );
    const byName = (a: KubeObject, b: KubeObject) =>
      `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`);
    const kubectl = parseAllDocuments(unhashed).map((doc) => doc.toJS() as KubeObject);
    assert.deepEqual(kubectl.sort(byName), [...objects].sort(byName));
  });

  it('references only ConfigMaps, Secrets and ServiceAccounts it has (or the README has you create)', () => {
    const has = (kind: string, name: string) =>
      objects.some((o) => o.kind === kind && o.metadata.name === name);
    assert.match(readFileSync(`${ROOT}README.md`, 'utf8'), new RegExp(CREATED_BY_THE_USER));
    for (const workload of objects.filter((o) => podSpec(o))) {
      const spec = podSpec(workload)!;
      const where = `${workload.kind}/${workload.metadata.name}`;
      if (spec.serviceAccountName) assert.ok(has('ServiceAccount', spec.serviceAccountName), where);
      for (const v of spec.volumes ?? []) {
        if (v.configMap)
          assert.ok(has('ConfigMap', v.configMap.name), `${where}: ConfigMap ${v.configMap.name}`);
        if (v.secret && v.secret.secretName !== CREATED_BY_THE_USER)
          assert.ok(has('Secret', v.secret.secretName), `${where}: Secret ${v.secret.secretName}`);
      }
      const secret = find(objects, 'Secret', 'estuary') as KubeObject & {
        stringData: Record<string, string>;
      };
      for (const c of spec.containers)
        for (const e of c.env ?? [])
          if (e.valueFrom?.secretKeyRef) {
            const { name, key } = e.valueFrom.secretKeyRef;
            assert.equal(name, 'estuary', `${where}: ${e.name}`);
            assert.ok(key in secret.stringData, `${where}: ${e.name} reads key ${key} of the Secret`);
          }
    }
  });

  it('keeps secrets out of ConfigMaps: every secret of the configs is a ${VAR} from a Secret', () => {
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      const data = Object.values(cm.data as Record<string, string>).join('\n');
      for (const m of data.matchAll(
        /^\s*(?:[-#]\s*)?(shared_key|auth_tokens|api_key|password|redis_url|requirepass)\b[^\n]*/gm,
      ))
        assert.match(m[0], /\$\{[A-Z_]+\}|#/, `ConfigMap ${cm.metadata.name}: ${m[0].trim()}`);
    }
    for (const c of pod.containers)
      for (const e of c.env ?? [])
        if (/KEY|TOKEN|PASSWORD/.test(e.name)) assert.ok(e.valueFrom?.secretKeyRef, e.name);
  });

  it('the Deployment: ≥ 2 replicas (the HPA minimum) spread over nodes, probes, resources, non-root and read-only', () => {
    // The HPA owns the replica count (a replicas here would undo its scaling on each apply).
    assert.equal((deployment.spec as { replicas?: number }).replicas, undefined);
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'estuary').spec as { minReplicas: number };
    assert.ok(hpa.minReplicas >= 2);
    const spread = pod.topologySpreadConstraints as { topologyKey: string; whenUnsatisfiable: string }[];
    assert.ok(
      spread.some(
        (s) => s.topologyKey === 'kubernetes.io/hostname' && s.whenUnsatisfiable === 'DoNotSchedule',
      ),
    );
    const probe = (name: string) => (estuary[name] as { httpGet: { path: string; port: string } }).httpGet;
    assert.deepEqual(probe('livenessProbe'), { path: '/healthz', port: 'admin' });
    assert.deepEqual(probe('readinessProbe'), { path: '/readyz', port: 'admin' });
    const ports = estuary.ports as { name: string; containerPort: number }[];
    assert.equal(ports.find((p) => p.name === 'admin')?.containerPort, 24231);
    const resources = estuary.resources as {
      requests: Record<string, string>;
      limits: Record<string, string>;
    };
    assert.ok(resources.requests.cpu && resources.requests.memory && resources.limits.memory);
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(estuary.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('terminationGracePeriodSeconds is above shutdown_timeout plus the preStop pause', () => {
    const preStop = (estuary.lifecycle as { preStop: { exec: { command: string[] } } }).preStop.exec.command;
    assert.equal(preStop[0], 'sleep');
    const needed = seconds(estuaryConfig.service.shutdown_timeout) + Number(preStop[1]);
    assert.ok((pod.terminationGracePeriodSeconds as number) > needed, `grace must exceed ${needed}s`);
  });

  it("the Estuary config passes estuary check with the Deployment's environment", () => {
    const configMap = pod.volumes!.find((v) => v.name === 'config')!.configMap!.name;
    assert.deepEqual(estuary.args, ['run', '-c', '/etc/estuary/estuary.yaml']);
    assert.equal(configMap, 'estuary');
    const output = estuaryCheck('k8s/estuary/estuary.yaml', envOf(estuary));
    assert.match(output, /: ok \(2 inputs/);
    // The inputs' TLS files are the mounted Secret's.
    const mounts = estuary.volumeMounts as { name: string; mountPath: string }[];
    const tls = mounts.find((m) => m.name === 'tls')!.mountPath;
    const config = readFileSync(`${ROOT}k8s/estuary/estuary.yaml`, 'utf8');
    assert.deepEqual(
      [...config.matchAll(/(?:cert|key)_file: (.*)\/tls\.(?:crt|key)$/gm)].map((m) => m[1]),
      [tls, tls, tls, tls],
    );
  });

  it('mounts no volume inside another (its mount point could not be made in a read-only volume)', () => {
    for (const workload of objects.filter((o) => podSpec(o)))
      for (const container of podSpec(workload)!.containers) {
        const paths = ((container.volumeMounts ?? []) as { mountPath: string }[]).map((m) => m.mountPath);
        for (const outer of paths)
          for (const inner of paths)
            assert.ok(
              !inner.startsWith(`${outer}/`),
              `${workload.metadata.name}/${container.name}: ${inner} inside ${outer}`,
            );
      }
  });

  it('the ServiceAccount shows the IRSA annotation for the AWS outputs', () => {
    assert.match(
      readFileSync(`${ROOT}k8s/estuary/serviceaccount.yaml`, 'utf8'),
      /eks\.amazonaws\.com\/role-arn: arn:aws:iam::/,
    );
  });

  it('the Service, HPA, PDB and NetworkPolicy point at the Deployment and its ports', () => {
    const labels = (deployment.spec as { template: { metadata: { labels: Record<string, string> } } })
      .template.metadata.labels;
    const selects = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);
    const service = find(objects, 'Service', 'estuary').spec as {
      selector: Record<string, string>;
      ports: { targetPort: string }[];
    };
    assert.ok(selects(service.selector));
    const portNames = (estuary.ports as { name: string }[]).map((p) => p.name);
    for (const p of service.ports) assert.ok(portNames.includes(p.targetPort), p.targetPort);
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'estuary').spec as {
      scaleTargetRef: { kind: string; name: string };
      minReplicas: number;
    };
    assert.deepEqual(
      [hpa.scaleTargetRef.kind, hpa.scaleTargetRef.name, hpa.minReplicas >= 2],
      ['Deployment', 'estuary', true],
    );
    const pdb = find(objects, 'PodDisruptionBudget', 'estuary').spec as {
      selector: { matchLabels: Record<string, string> };
    };
    assert.ok(selects(pdb.selector.matchLabels));
    const policy = find(objects, 'NetworkPolicy', 'estuary').spec as {
      podSelector: { matchLabels: Record<string, string> };
      ingress: { ports: { port: number }[] }[];
    };
    assert.ok(selects(policy.podSelector.matchLabels));
    const open = new Set(policy.ingress.flatMap((r) => r.ports.map((p) => p.port)));
    assert.deepEqual([...open].sort(), [24224, 24231, 9880].sort());
  });

  it('Redis: a StatefulSet with its AOF on a PersistentVolumeClaim, never evicting', () => {
    const redis = find(objects, 'StatefulSet', 'estuary-redis');
    const claims = (redis.spec as { volumeClaimTemplates: { metadata: { name: string } }[] })
      .volumeClaimTemplates;
    const mounts = podSpec(redis)!.containers[0]!.volumeMounts as { name: string; mountPath: string }[];
    assert.deepEqual(mounts.find((m) => m.name === claims[0]!.metadata.name)?.mountPath, '/data');
    const conf = (find(objects, 'ConfigMap', 'estuary-redis').data as Record<string, string>)['redis.conf']!;
    for (const line of ['appendonly yes', 'dir /data', 'maxmemory-policy noeviction'])
      assert.match(conf, new RegExp(`^${line}$`, 'm'));
  });

  it('monitoring: the ServiceMonitor scrapes the admin port; the dashboard is a sidecar ConfigMap', () => {
    const monitor = find(objects, 'ServiceMonitor', 'estuary').spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: { port: string }[];
    };
    const service = find(objects, 'Service', 'estuary');
    for (const [k, v] of Object.entries(monitor.selector.matchLabels))
      assert.equal(service.metadata.labels?.[k], v);
    assert.ok(monitor.endpoints.some((e) => e.port === 'admin'));
    const dashboard = find(objects, 'ConfigMap', 'estuary-dashboard');
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
    assert.equal(
      JSON.parse((dashboard.data as Record<string, string>)['estuary-dashboard.json']!).uid,
      'estuary',
    );
  });

  describe('the Fluent Bit DaemonSet', () => {
    const daemonSet = find(objects, 'DaemonSet', 'fluent-bit');
    const agent = podSpec(daemonSet)!.containers[0]!;
    const config = readYaml<{
      pipeline: {
        inputs: Record<string, unknown>[];
        filters: Record<string, unknown>[];
        outputs: Record<string, unknown>[];
      };
    }>('k8s/fluent-bit/fluent-bit.yaml');

    it("passes fluent-bit --dry-run with the DaemonSet's environment", (t) => {
      fluentBitDryRun(t, 'k8s/fluent-bit/fluent-bit.yaml', envOf(agent));
    });

    it('tails container logs with the CRI parser, adds Kubernetes metadata, forwards to Estuary over TLS with acks', () => {
      const [tail] = config.pipeline.inputs;
      assert.deepEqual(
        [tail?.name, tail?.path, tail?.['multiline.parser'], tail?.['storage.type']],
        ['tail', '/var/log/containers/*.log', 'cri', 'filesystem'],
      );
      assert.equal(config.pipeline.filters[0]?.name, 'kubernetes');
      const [forward] = config.pipeline.outputs;
      assert.equal(forward?.name, 'forward');
      assert.equal(forward?.host, 'estuary.logging.svc');
      assert.equal(forward?.port, 24224);
      assert.equal(forward?.shared_key, '${FORWARD_SHARED_KEY}');
      // Fluent Bit reads `on` and `true` alike; YAML 1.2 reads only `true` as a boolean.
      const on = (key: string) => [true, 'on'].includes(forward?.[key] as string | boolean);
      assert.deepEqual(
        ['require_ack_response', 'tls', 'tls.verify'].filter((k) => !on(k)),
        [],
      );
      const mounts = agent.volumeMounts as { name: string; mountPath: string }[];
      assert.equal(`${mounts.find((m) => m.name === 'tls')?.mountPath}/ca.crt`, forward?.['tls.ca_file']);
    });

    it('may read pods and namespaces, nothing more', () => {
      const role = find(objects, 'ClusterRole', 'estuary-fluent-bit') as KubeObject & {
        rules: { resources: string[]; verbs: string[] }[];
      };
      assert.deepEqual(role.rules, [
        { apiGroups: [''], resources: ['namespaces', 'pods'], verbs: ['get', 'list', 'watch'] },
      ]);
      assert.deepEqual(
        [
          podSpec(daemonSet)!.serviceAccountName,
          (
            find(objects, 'ClusterRoleBinding', 'estuary-fluent-bit') as KubeObject & {
              subjects: { name: string; namespace: string }[];
            }
          ).subjects,
        ],
        ['fluent-bit', [{ kind: 'ServiceAccount', name: 'fluent-bit', namespace: 'logging' }]],
      );
    });
  });
});
