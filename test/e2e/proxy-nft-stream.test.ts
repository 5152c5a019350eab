// nftables mode, the streamed full sync on a real nft in a lab namespace: the backend writes the full script
// into `nft -f -` as it produces it; the kernel's table must be the one the same script gives when written as
// one string, and the transaction must stay one: an error at the end of a streamed script, or a script cut off
// because producing it failed, leaves the previous table as it was.
import t from 'tap';
import type { Exec } from '../../src/common/exec-adapter.ts';
import { silentLogger } from '../../src/common/log.ts';
import { Lab } from '../../src/lab/lab.ts';
import { NftablesBackend } from '../../src/proxy/nftables/backend.ts';
import { fullScript, fullScriptLines, renderNft } from '../../src/proxy/nftables/render.ts';
import { ports } from '../../bench/proxy/gen.ts';
import { needsRoot } from '../helpers/gate.ts';

const CFG = { clusterCIDRs: ['198.16.0.0/12'] };
const NONE = { chains: new Set<string>(), sets: new Set<string>(), maps: new Set<string>() };

if (needsRoot(t)) {
  t.test('streamed full sync on a real nft', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const ns = await lab.addNamespace('nft-stream');
    const exec: Exec = { run: (argv, opts) => lab.exec(ns, argv, opts) };
    const table = async () => (await exec.run(['nft', 'list', 'table', 'ip', 'kdp'])).stdout;

    // 3,000 services x 2 endpoints: a ~0.5 MB script, several writes of the stream
    const model = ports(3000, 2);
    const backend = new NftablesBackend({ exec, config: CFG, log: silentLogger });
    const { lines } = await backend.sync(new Map([['IPv4', model]]), true);
    const streamed = await table();
    t.ok(lines > 50, `${lines} lines streamed`);
    t.match(streamed, /10\.96\.11\.183 \. 80 \. 1 : 198\.19\.\d+\.\d+ \. 8080/, 'the last elements arrived');

    await exec.run(['nft', 'delete', 'table', 'ip', 'kdp']);
    const text = fullScript(renderNft(model, 'ip', CFG), NONE).join('\n') + '\n';
    t.ok(text.length > 256 * 1024, `the script is ${text.length} characters`);
    await exec.run(['nft', '-f', '-'], { input: text });
    t.ok((await table()) === streamed, 'the same table as the script written as one string');

    // a different table, streamed, with an error in its last line: nothing of it is applied
    const other = renderNft(ports(2000, 3), 'ip', CFG);
    const existing = {
      chains: new Set(other.chains.keys()),
      sets: new Set(other.sets.keys()),
      maps: new Set(other.maps.keys()),
    };
    const script = function* () {
      for (const l of fullScriptLines(other, existing)) yield `${l}\n`;
    };
    const badEnd = function* () {
      yield* script();
      yield 'add rule ip kdp no-such-chain accept\n';
    };
    await t.rejects(exec.run(['nft', '-f', '-'], { input: badEnd() }), { code: 'KDP_EXEC_FAILED' });
    t.ok((await table()) === streamed, 'an error in the last line: the previous table, untouched');

    // producing the script fails half-way: nft is killed before the end of its input and commits nothing
    let n = 0;
    const cut = function* () {
      for (const l of script()) {
        if (++n === 200) throw new Error('render failed');
        yield l;
      }
    };
    await t.rejects(exec.run(['nft', '-f', '-'], { input: cut() }), {
      code: 'KDP_EXEC_FAILED',
      message: /producing its input failed: render failed/,
    });
    t.ok((await table()) === streamed, 'a script cut off: the previous table, untouched');

    // and the whole other script, streamed, applies
    await exec.run(['nft', '-f', '-'], { input: script() });
    t.match(await table(), /10\.96\.7\.207 \. 80 \. 2 : /, 'a good streamed script replaces the table');
    t.notMatch(await table(), /10\.96\.11\.183 \. 80/, 'and nothing of the previous one is left');
  });
}
