import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ROOT, readYaml, readYamlDocuments } from './tools.ts';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

interface Kustomization {
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean }[];
  resources: string[];
  configMapGenerator?: { name: string; files: string[]; options?: { labels?: Record<string, string> } }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

/**
 * The objects `kubectl apply -k <dir>` creates, built as kustomize builds them but only for
 * what k8s/kustomization.yaml uses (resources, configMapGenerator, namespace, labels,
 * images), so the test runs where kubectl is not installed. Generated names carry no hash
 * suffix here; k8s.test.ts checks the result equals `kubectl kustomize`'s where kubectl is.
 */
export function buildKustomization(dir: string): KubeObject[] {
  const k = readYaml<Kustomization>(`${dir}/kustomization.yaml`);
  const known = new Set([
    'apiVersion',
    'kind',
    'namespace',
    'labels',
    'resources',
    'configMapGenerator',
    'images',
  ]);
  for (const key of Object.keys(k))
    assert.ok(known.has(key), `kustomization.yaml: ${key} is not built by this test`);
  const objects = k.resources.flatMap((file) => readYamlDocuments(`${dir}/${file}`) as KubeObject[]);
  for (const gen of k.configMapGenerator ?? []) {
    const data = Object.fromEntries(
      gen.files.map((file) => [basename(file), readFileSync(`${ROOT}${dir}/${file}`, 'utf8')]),
    );
    const metadata: KubeObject['metadata'] = { name: gen.name };
    if (gen.options?.labels) metadata.labels = { ...gen.options.labels };
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata, data });
  }
  for (const obj of objects) {
    if (k.namespace && !CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace = k.namespace;
    for (const { pairs } of k.labels ?? []) obj.metadata.labels = { ...obj.metadata.labels, ...pairs };
    for (const container of podSpec(obj)?.containers ?? []) {
      const image = k.images?.find((i) => i.name === container.image);
      if (image) container.image = `${image.newName ?? image.name}:${image.newTag ?? 'latest'}`;
    }
  }
  return objects;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  [key: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
  serviceAccountName?: string;
  [key: string]: unknown;
}

/** The pod template's spec of a workload (Deployment, StatefulSet, DaemonSet). */
export function podSpec(obj: KubeObject): PodSpec | undefined {
  const spec = obj.spec as { template?: { spec?: PodSpec } } | undefined;
  return spec?.template?.spec;
}

/** The object of this kind and name; fails when there is none. */
export function find(objects: KubeObject[], kind: string, name: string): KubeObject {
  const obj = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(obj, `${kind}/${name} is in the kustomization`);
  return obj;
}

/** Where the kubernetes-models class (and its TypeScript interface) of an apiVersion lives. */
export function modelModule(apiVersion: string): string {
  const pkg = apiVersion.startsWith('monitoring.coreos.com/')
    ? '@kubernetes-models/prometheus-operator'
    : 'kubernetes-models';
  return `${pkg}/${apiVersion}`;
}
