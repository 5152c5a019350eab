// Preloaded into the component the memory benchmark measures (`node --expose-gc --import this-file ...`):
// on SIGUSR2 it runs two full garbage collections and writes process.memoryUsage() as JSON to the file
// named by KDP_BENCH_HEAP_OUT, so RSS is sampled after a forced settle and the heap after GC is known.
// Benchmark-only: nothing in kdp itself loads this.
import { writeFileSync } from 'node:fs';

const gc = (globalThis as { gc?: () => void }).gc;
const out = process.env.KDP_BENCH_HEAP_OUT;
if (gc && out)
  process.on('SIGUSR2', () => {
    gc();
    gc();
    writeFileSync(out, JSON.stringify(process.memoryUsage()));
  });
