/**
 * The dependency rule of src/ (docs/architecture.md, "Where things go"), checked by
 * test/unit/architecture/dependencies.test.ts and by `npx depcruise src` (which also draws
 * the graph: `npx depcruise src --output-type dot`).
 *
 * Layers, lowest first. A module may import its own layer and the layers below, never one
 * above; and no module may reach itself through its imports (type-only imports count: they
 * are how a lower layer ends up knowing a higher one).
 */
export const LAYERS = [
  { name: 'foundation', dirs: ['errors'] },
  { name: 'shared', dirs: ['platform', 'api', 'config', 'secrets'] },
  { name: 'kernel runtime', dirs: ['kernel', 'telemetry'] },
  { name: 'domains', dirs: ['postgres', 'backup', 'replication', 'realtime', 'pooler', 'databases', 'migrations', 'doctor', 'service', 'tls', 'health', 'cluster', 'events', 'hooks', 'extensions'] },
  { name: 'daemon (composition root)', dirs: ['daemon'] },
  { name: 'CLI support', dirs: ['client', 'ui', 'cli'] },
  { name: 'commands', dirs: ['commands'] },
]

const dirsRe = (dirs) => `^src/(${dirs.join('|')})/`

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `no-upward-import-from-${layer.dirs[0]}`,
  comment: `${layer.name} (${layer.dirs.join(', ')}) imports nothing from a higher layer`,
  severity: 'error',
  from: { path: dirsRe(layer.dirs) },
  to: { path: dirsRe(LAYERS.slice(i + 1).flatMap((l) => l.dirs)) },
}))

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import cycle: split the shared part into a lower module',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      comment: 'every folder of src/ has a place in LAYERS (.dependency-cruiser.mjs)',
      severity: 'error',
      from: { path: '^src/', pathNot: dirsRe(LAYERS.flatMap((l) => l.dirs)) },
      to: {},
    },
    ...layerRules,
  ],
  options: {
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.js', '.mjs'] },
  },
}
