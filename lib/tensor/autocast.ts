/**
 * The precision of matrix products, chosen per call like torch.autocast: every GEMM (linear,
 * matmul, conv, the fused linear+GELU) passes matmulPrecision() to its kernel. 'float32' computes
 * in fp32; 'bf16' rounds both operands to bfloat16 and accumulates in fp32. Attention always
 * computes in fp32.
 *
 *   const loss = dv.autocast('bf16', () => model.forward(x));  // bf16 GEMMs inside only
 */
import type { MatmulPrecision } from '../backend/kernels/gemm.js';

export type { MatmulPrecision } from '../backend/kernels/gemm.js';

const PRECISIONS: readonly MatmulPrecision[] = ['float32', 'bf16'];
const scopes: MatmulPrecision[] = [];
let defaultPrecision: MatmulPrecision | null = null;

function checkPrecision(op: string, precision: unknown): MatmulPrecision {
  if (!PRECISIONS.includes(precision as MatmulPrecision)) {
    throw new Error(`diffvit.${op}: argument 'precision' expected one of 'float32', 'bf16', received ${typeof precision === 'string' ? `'${precision}'` : String(precision)}`);
  }
  return precision as MatmulPrecision;
}

/** Runs fn with every GEMM inside it at `precision` (nested scopes: the innermost wins). */
export function autocast<T>(precision: MatmulPrecision, fn: () => T): T {
  scopes.push(checkPrecision('autocast', precision));
  try {
    return fn();
  } finally {
    scopes.pop();
  }
}

/** The precision a GEMM started now uses: the innermost autocast scope's, else the default. */
export function matmulPrecision(): MatmulPrecision {
  return scopes.length ? scopes[scopes.length - 1] : getMatmulPrecision();
}

/**
 * The precision outside every autocast scope (torch.set_float32_matmul_precision's role).
 * Initially DIFFVIT_MATMUL_PRECISION, else 'float32'.
 */
export function setMatmulPrecision(precision: MatmulPrecision): void {
  defaultPrecision = checkPrecision('setMatmulPrecision', precision);
}

/** The default precision (see setMatmulPrecision); throws while DIFFVIT_MATMUL_PRECISION is invalid and none was set. */
export function getMatmulPrecision(): MatmulPrecision {
  if (defaultPrecision) return defaultPrecision;
  const env = process.env.DIFFVIT_MATMUL_PRECISION;
  // A typo must not silently run the other precision: refuse until it is fixed or overridden.
  if (env && !PRECISIONS.includes(env as MatmulPrecision)) {
    throw new Error(`diffvit.matmulPrecision: DIFFVIT_MATMUL_PRECISION expected 'float32' or 'bf16', received '${env}'`);
  }
  defaultPrecision = (env || 'float32') as MatmulPrecision;
  return defaultPrecision;
}
