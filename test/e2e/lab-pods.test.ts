// The hand-wired test pods: same-node and cross-node pod-to-pod over host-gw routes, source IP preserved.
import t from 'tap';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { PROBE, addPod, routeNodes, startEcho } from '../helpers/pods.ts';

if (needsRoot(t)) {
  t.test('pods reach each other on one node and across nodes, without NAT', async (t) => {
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const [n1, n2] = lab.nodes as [(typeof lab.nodes)[0], (typeof lab.nodes)[0]];
    const a = await addPod(lab, n1, 'a', 10);
    const b = await addPod(lab, n1, 'b', 11);
    const c = await addPod(lab, n2, 'c', 10);
    await routeNodes(lab);
    await Promise.all([startEcho(lab, b, { http: [8080], udp: [5300] }), startEcho(lab, c, { http: [8080] })]);
    const same = await lab.exec(a.ns, ['curl', '-sS', '--max-time', '5', `http://${b.ip4}:8080/x`]);
    t.match(
      JSON.parse(same.stdout),
      { name: 'b', path: '/x', client: new RegExp(`^(::ffff:)?${a.ip4.replace(/\./g, '\\.')}:`) },
      'same node, client IP kept',
    );
    const cross = await lab.exec(a.ns, ['curl', '-sS', '--max-time', '5', `http://${c.ip4}:8080/`]);
    t.match(
      JSON.parse(cross.stdout),
      { name: 'c', client: new RegExp(`${a.ip4.replace(/\./g, '\\.')}:`) },
      'across nodes, client IP kept',
    );
    const fromNode = await lab.exec(n2.ns, ['curl', '-sS', '--max-time', '5', `http://${b.ip4}:8080/`]);
    t.match(
      JSON.parse(fromNode.stdout),
      { name: 'b', client: new RegExp(`${n2.ip4.replace(/\./g, '\\.')}:`) },
      'node to remote pod',
    );
    const udp = await lab.exec(a.ns, [...PROBE, 'udp', b.ip4, '5300', 'ping'], { allowFailure: true });
    t.equal(udp.stdout, 'b ping\n', 'UDP echo answers with the pod name');
    const refused = await lab.exec(a.ns, [...PROBE, 'connect', b.ip4, '9999'], { allowFailure: true });
    t.match(refused.stdout, /^refused/, 'a closed port refuses at once');
    const open = await lab.exec(a.ns, [...PROBE, 'connect', c.ip4, '8080']);
    t.match(open.stdout, /^connected/);
  });
}
