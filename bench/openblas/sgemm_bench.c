/*
 * The OpenBLAS sgemm baseline of bench/gemm.ts, compiled by it at bench time:
 *   cc -O2 -o sgemm_bench sgemm_bench.c -lopenblas
 * Usage: sgemm_bench MIN_SECONDS THREADS  BATCH M N K TRANS_A TRANS_B  [BATCH M N K TRANS_A TRANS_B ...]
 * For each shape, C = op(A) op(B) on row-major float32 operands laid out as bench/gemm.ts lays
 * out diffvit's (batch items one after another, one cblas_sgemm each: OpenBLAS 0.3.21 has no
 * batched sgemm); timed as bench/common.ts timeIt does: 2 warm-up calls, then the median of at
 * least 5 calls and MIN_SECONDS. Prints one JSON object on stdout:
 *   {"corename": "...", "config": "...", "threads": T, "seconds": [s0, s1, ...]}
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static void fill(float* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)((seed >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
  }
}

struct shape {
  long batch, m, n, k;
  int ta, tb;
};

static void run(const struct shape* s, const float* a, const float* b, float* c) {
  const long lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  for (long i = 0; i < s->batch; ++i) {
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, (blasint)s->m,
                (blasint)s->n, (blasint)s->k, 1.0f, a + i * s->m * s->k, (blasint)lda, b + i * s->k * s->n, (blasint)ldb,
                0.0f, c + i * s->m * s->n, (blasint)s->n);
  }
}

static double time_shape(const struct shape* s, double min_seconds) {
  float* a = malloc(sizeof(float) * (size_t)(s->batch * s->m * s->k));
  float* b = malloc(sizeof(float) * (size_t)(s->batch * s->k * s->n));
  float* c = malloc(sizeof(float) * (size_t)(s->batch * s->m * s->n));
  if (!a || !b || !c) {
    fprintf(stderr, "sgemm_bench: out of memory\n");
    exit(1);
  }
  fill(a, (size_t)(s->batch * s->m * s->k), 1);
  fill(b, (size_t)(s->batch * s->k * s->n), 2);
  for (int i = 0; i < 2; ++i) run(s, a, b, c);
  size_t cap = 64, count = 0;
  double* times = malloc(sizeof(double) * cap);
  const double start = now();
  while (count < 5 || now() - start < min_seconds) {
    const double t0 = now();
    run(s, a, b, c);
    if (count == cap) times = realloc(times, sizeof(double) * (cap *= 2));
    times[count++] = now() - t0;
  }
  qsort(times, count, sizeof(double), compare);
  const double median = times[count / 2];
  free(times);
  free(a);
  free(b);
  free(c);
  return median;
}

int main(int argc, char** argv) {
  if (argc < 9 || (argc - 3) % 6 != 0) {
    fprintf(stderr, "usage: sgemm_bench MIN_SECONDS THREADS BATCH M N K TRANS_A TRANS_B [...]\n");
    return 2;
  }
  const double min_seconds = atof(argv[1]);
  const int threads = atoi(argv[2]);
  openblas_set_num_threads(threads);
  printf("{\"corename\": \"%s\", \"config\": \"%s\", \"threads\": %d, \"seconds\": [", openblas_get_corename(),
         openblas_get_config(), threads);
  for (int i = 3; i < argc; i += 6) {
    struct shape s = {atol(argv[i]), atol(argv[i + 1]), atol(argv[i + 2]), atol(argv[i + 3]), atoi(argv[i + 4]),
                      atoi(argv[i + 5])};
    printf("%s%.9g", i == 3 ? "" : ", ", time_shape(&s, min_seconds));
    fflush(stdout);
  }
  printf("]}\n");
  return 0;
}
