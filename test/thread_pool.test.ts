/** The native pool survives resizing between kernels (new workers must not act on a finished run). */
import { expect, test } from 'vitest';
import * as dv from '../lib/index.js';
test('resizing the pool many times never hangs or loses work', () => {
  const x = dv.randn([512, 512]);
  const ref = dv.matmul(x, x).data();
  for (let i = 0; i < 300; i++) {
    dv.setThreads(1 + (i % 3));
    const y = dv.scope(() => dv.matmul(x, x).data());
    expect(y[1234]).toBe(ref[1234]);
  }
  dv.setThreads(2);
});
