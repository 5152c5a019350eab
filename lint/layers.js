// The layering of docs/ARCHITECTURE.md as an ESLint rule (`kdp/layers`). Every folder of ours belongs to one
// unit, every unit to one layer; an import is resolved to the file it names and then checked:
//   - no upward import: a unit imports only units of lower layers (and itself);
//   - no sideways import: two units of the same layer never import each other (components never import
//     sibling components; netlink does not lean on ipam);
//   - production never imports a `testing/` folder (only test/, bench/ and other testing/ folders may);
//   - src/status reaches a component only through the component's status.ts (its small status interface),
//     never its compilers or renderers.
// A file under src/ outside every unit is an error (a new folder gets a layer first); files outside src/ and
// every unit (test/, bench/, scripts/, config) are not checked. Import specifiers that are not
// relative (packages, node:) are not ours and not checked here.
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** lowest first; a unit is a folder (repository-relative) or a list of folders */
export const LAYERS = [
  { name: 'base', units: { model: ['src/model'], common: ['src/common'] } },
  { name: 'libraries', units: { k8s: ['src/k8s'], cnispec: ['src/cnispec'], lab: ['src/lab'] } },
  { name: 'kernel', units: { ipam: ['src/ipam'], netlink: ['src/netlink'] } },
  {
    name: 'components',
    units: {
      cni: ['src/cni', 'cni-plugins'],
      node: ['src/node'],
      proxy: ['src/proxy'],
      dns: ['src/dns'],
      ingress: ['ingress'],
      policy: ['src/policy'],
    },
  },
  { name: 'tools', units: { status: ['src/status'], up: ['src/up'] } },
  { name: 'cli', units: { cli: ['src/cli'] } },
];

/** importer unit -> the one file of a lower component it may import */
const THROUGH = { status: 'status.ts' };

/** repository-relative path -> { unit, layer, rest } (rest: the path inside the unit's folder), or undefined */
export function unitOf(path) {
  const p = path.split(sep).join('/');
  for (let layer = 0; layer < LAYERS.length; layer++)
    for (const [unit, folders] of Object.entries(LAYERS[layer].units))
      for (const f of folders) if (p.startsWith(f + '/')) return { unit, layer, rest: p.slice(f.length + 1) };
  return undefined;
}

const isTesting = (p) => p.split(sep).join('/').split('/').includes('testing');
const isProduction = (p) => unitOf(p) !== undefined && !isTesting(p);

/** The complaint about importing `target` from `file` (both repository-relative), or undefined when allowed. */
export function checkImport(file, target) {
  const from = unitOf(file);
  if (!from) return undefined;
  if (isTesting(target) && isProduction(file))
    return `production code never imports a testing/ folder (${target}); only test/, bench/ and testing/ may`;
  const to = unitOf(target);
  if (!to || to.unit === from.unit) return undefined;
  const layerName = (l) => LAYERS[l].name;
  if (to.layer > from.layer)
    return `upward import: ${from.unit} (layer ${layerName(from.layer)}) must not import ${to.unit} (layer ${layerName(to.layer)}): ${target}`;
  if (to.layer === from.layer)
    return `sideways import: ${from.unit} and ${to.unit} are both in layer ${layerName(to.layer)} and never import each other: ${target}`;
  const through = THROUGH[from.unit];
  if (through && LAYERS[to.layer].name === 'components' && to.rest !== through)
    return `${from.unit} reaches ${to.unit} only through its ${through} (its status interface), not ${target}`;
  return undefined;
}

const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'the layering of docs/ARCHITECTURE.md' },
    schema: [],
    messages: { wall: '{{why}}' },
  },
  create(context) {
    const file = relative(ROOT, context.filename);
    if (file.startsWith('..')) return {};
    if (!unitOf(file)) {
      // every folder of src/ has a place in the layers: a new one cannot escape the walls unnoticed
      if (file.split(sep)[0] !== 'src') return {};
      return {
        Program: (node) =>
          context.report({
            node,
            messageId: 'wall',
            data: { why: `${file} is in no layer: add its folder to LAYERS in lint/layers.js` },
          }),
      };
    }
    const check = (source) => {
      if (!source || source.type !== 'Literal' || typeof source.value !== 'string') return;
      if (!source.value.startsWith('.')) return;
      const target = relative(ROOT, resolve(dirname(context.filename), source.value));
      const why = checkImport(file, target);
      if (why) context.report({ node: source, messageId: 'wall', data: { why } });
    };
    return {
      ImportDeclaration: (n) => check(n.source),
      ExportNamedDeclaration: (n) => check(n.source),
      ExportAllDeclaration: (n) => check(n.source),
      ImportExpression: (n) => check(n.source),
    };
  },
};

export default { rules: { layers: layersRule } };
