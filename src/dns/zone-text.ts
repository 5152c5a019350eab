// Zone-file notation (RFC 1035 5.1) for records: how tests state expectations and how logs show answers.
import type { RR } from './wire.ts';

const fq = (n: string) => (n === '' ? '.' : `${n}.`);

export function formatRR(rr: RR): string {
  const head = `${fq(rr.name)} ${rr.ttl} IN ${rr.type === 'RAW' ? `TYPE${rr.code}` : rr.type}`;
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return `${head} ${rr.data}`;
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return `${head} ${fq(rr.data)}`;
    case 'SRV':
      return `${head} ${rr.data.priority} ${rr.data.weight} ${rr.data.port} ${fq(rr.data.target)}`;
    case 'TXT':
      return `${head} ${rr.data.map((s) => JSON.stringify(s)).join(' ')}`;
    case 'SOA': {
      const d = rr.data;
      return `${head} ${fq(d.mname)} ${fq(d.rname)} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    }
    case 'RAW':
      return `${head} \\# ${rr.data.length} ${rr.data.toString('hex')}`;
  }
}
