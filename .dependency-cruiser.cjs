/**
 * The layer rule of packages/udp-core/src (docs/architecture.md, "Layers"): a folder
 * imports only from its own layer or from a lower one, and nothing imports in a circle.
 * Every module of src is in a layer: one in none is refused. Checked in CI by
 * `npm run lint` (.ci/run).
 */
const SRC = '^packages/udp-core/src/';
// Lowest first. A module of layer N may import from layers 0..N only.
const LAYERS = [
  ['errors\\.ts$', 'defaults\\.ts$', 'ffi/'],
  ['app/', 'stats/', 'steering/'],
  ['worker/'],
  ['supervisor/'],
  ['control/', 'http/', 'service/', 'load/'],
  ['cli/', 'exports/', 'index\\.ts$'],
];
const pattern = (folders) => `${SRC}(${folders.join('|')})`;
const LAYERED = pattern(LAYERS.flat());
const NO_LAYER = 'is in no layer: add its folder (or file) to LAYERS in .dependency-cruiser.cjs and to docs/architecture.md';

module.exports = {
  forbidden: [
    ...LAYERS.slice(0, -1).map((folders, n) => ({
      name: `layer-${n}-imports-higher`,
      comment: `${folders.join(', ')} (layer ${n}) must not import from a higher layer: ${LAYERS.slice(n + 1).flat().join(', ')}`,
      severity: 'error',
      from: { path: pattern(folders) },
      to: { path: pattern(LAYERS.slice(n + 1).flat()) },
    })),
    // A module in no layer escapes the rule above both ways: refused whether it imports, is imported, or neither.
    {
      name: 'module-in-no-layer-imports',
      comment: `a module that ${NO_LAYER}`,
      severity: 'error',
      from: { path: SRC, pathNot: LAYERED },
      to: {},
    },
    {
      name: 'module-in-no-layer-imported',
      comment: `an imported module that ${NO_LAYER}`,
      severity: 'error',
      from: { path: SRC },
      to: { path: SRC, pathNot: LAYERED },
    },
    {
      name: 'module-in-no-layer-orphan',
      comment: `an orphan module that ${NO_LAYER}`,
      severity: 'error',
      from: { path: SRC, pathNot: LAYERED, orphan: true },
      to: {},
    },
    {
      name: 'no-circular',
      comment: 'no import cycles (type-only imports included)',
      severity: 'error',
      from: { path: SRC },
      to: { circular: true },
    },
    {
      name: 'examples-through-the-package',
      comment: "the examples use udp-core the way users do: through '@shardgram/udp-core' and its subpaths, never its files",
      severity: 'error',
      from: { path: '^packages/examples/src/' },
      to: { path: '^packages/udp-core/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
