// A cluster worker for test/unit/common/worker-slots.test.ts: KDP_TEST_MODE=serve says "up" and stays until
// SIGTERM; fail exits 3 at once (a start-up failure).
if (process.env['KDP_TEST_MODE'] === 'fail') process.exit(3);
process.send?.({ type: 'up' });
const timer = setInterval(() => {}, 1000);
process.on('SIGTERM', () => {
  clearInterval(timer);
  process.exit(0);
});
