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

test('thousands of back-to-back small parallel regions lose no chunk, even with more threads than cores', () => {
  // Workers often wake after the caller has run every chunk itself; they must neither miss a
  // region nor act on a finished one (a lost or doubled chunk changes a value or hangs the run).
  const x = dv.randn([64, 1000]), y = dv.randn([64, 1000]);
  dv.setThreads(1);
  const sum = dv.scope(() => dv.add(x, y).data());
  const rowSums = dv.scope(() => dv.sum(x, 1).data());
  const differing = (a: Float32Array, b: Float32Array) => a.reduce((n, v, i) => n + (v === b[i] ? 0 : 1), 0);
  for (const threads of [2, 3, 5]) {
    dv.setThreads(threads);
    let wrong = 0;
    for (let i = 0; i < 2000; i++) {
      dv.scope(() => {
        wrong += differing(dv.add(x, y).data(), sum);
        if (i % 10 === 0) wrong += differing(dv.sum(x, 1).data(), rowSums);
      });
    }
    expect(wrong, `${threads} threads: values that differ from the 1-thread results`).toBe(0);
  }
  dv.setThreads(2);
});
