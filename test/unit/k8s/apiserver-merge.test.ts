// The API double's patch semantics (what kubectl apply relies on), as a table.
import t from 'tap';
import { mergePatch } from '../../apiserver/server.ts';

t.test('merge and strategic-merge patches', async (t) => {
  const cases: { name: string; target: unknown; patch: unknown; want: unknown }[] = [
    {
      name: 'merge fields, null deletes',
      target: { a: 1, b: { c: 2, d: 3 } },
      patch: { b: { c: null, e: 4 } },
      want: { a: 1, b: { d: 3, e: 4 } },
    },
    { name: 'plain lists replace', target: { l: [1, 2] }, patch: { l: [3] }, want: { l: [3] } },
    { name: 'directives dropped', target: { a: 1 }, patch: { $retainKeys: ['a'], a: 2 }, want: { a: 2 } },
    {
      name: 'setElementOrder merges by key and keeps unchanged elements',
      target: {
        ports: [
          { port: 80, name: 'a', targetPort: 1 },
          { port: 81, name: 'b' },
        ],
      },
      patch: { '$setElementOrder/ports': [{ port: 80 }, { port: 81 }], ports: [{ port: 80, targetPort: 2 }] },
      want: {
        ports: [
          { port: 80, name: 'a', targetPort: 2 },
          { port: 81, name: 'b' },
        ],
      },
    },
    {
      name: '$patch: delete removes an element',
      target: { ports: [{ port: 80 }, { port: 81 }] },
      patch: {
        '$setElementOrder/ports': [{ port: 82 }],
        ports: [{ port: 82 }, { $patch: 'delete', port: 80 }, { $patch: 'delete', port: 81 }],
      },
      want: { ports: [{ port: 82 }] },
    },
  ];
  for (const c of cases) t.same(mergePatch(c.target, c.patch), c.want, c.name);
});
