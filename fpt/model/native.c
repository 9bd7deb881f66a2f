/* CPU kernels for fpt.model.native, in fp32: attention with dropout, dropout, BERT's dropout-add-norm.

   PyTorch eager runs attention with dropout as about twenty operators (two batched products that
   first copy their strided inputs, scale, mask, softmax, dropout, and their gradients), each a pass
   over memory and a dispatch. On rows as short as the bit tasks' 10 positions the batched products
   cost ~0.5 us per 10x32x10 matrix and the rest is overhead. Here one call per direction does it all,
   a (batch, head) at a time, on the strided inputs, with rows in chunks of W = 16 lanes (one AVX-512
   register of fp32; two AVX2 ones) and the products in register blocks.

   Plain C with GCC/Clang vector extensions: the compiler lowers `v16` to the registers the build
   flags allow. The keep mask is the caller's draws (fpt.model.dropout): 15 bits of each int16, kept
   where >= thr, so the random stream and the mask are the ones the eager path uses. */

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i16v __attribute__((vector_size(64)));
typedef int16_t h16v __attribute__((vector_size(32)));
typedef uint8_t b16v __attribute__((vector_size(16)));

#define W 16  /* lanes per register; head sizes are multiples of it */
#define RB 8  /* rows per register block of small_gemm */

/* a (B, H, L, D) tensor whose last dimension is contiguous */
typedef struct { const float *p; int64_t sb, sh, sl; } In;
typedef struct { float *p; int64_t sb, sh, sl; } Out;
/* an attention mask broadcast to (B, H, Lq, Lk): boolean (keep where true), additive, causal (keep key
   j <= query i), or none */
typedef struct { const uint8_t *keep; const float *add; int64_t sb, sh, si, sj; int causal; } Mask;

static const i16v LANE = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static inline v16 load16(const float *p) { v16 x; memcpy(&x, p, sizeof x); return x; }
static inline void store16(float *p, v16 x) { memcpy(p, &x, sizeof x); }
static inline v16 select16(i16v m, v16 a, v16 b) { return (v16)(((i16v)a & m) | ((i16v)b & ~m)); }
static inline v16 splat(float x) { return (v16){0} + x; }

#if defined(__clang__)
#define SWAP(x, n) __builtin_shufflevector(x, x, SWAP_##n)
#else
#define SWAP(x, n) __builtin_shuffle(x, (i16v){SWAP_##n})
#endif
#define SWAP_8 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7
#define SWAP_4 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11
#define SWAP_2 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13
#define SWAP_1 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14

/* every lane: the max (the sum) of all lanes. A NaN lane need not win the max: it still makes its
   row's sum, and so the whole row, NaN, as PyTorch's softmax does. */
static inline v16 max16(v16 a, v16 b) { return select16(a > b, a, b); }
static inline v16 all_max(v16 x) { x = max16(x, SWAP(x, 8)); x = max16(x, SWAP(x, 4)); x = max16(x, SWAP(x, 2)); return max16(x, SWAP(x, 1)); }
static inline v16 all_sum(v16 x) { x += SWAP(x, 8); x += SWAP(x, 4); x += SWAP(x, 2); return x + SWAP(x, 1); }

/* e^x lane-wise within 2 ulp (x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial); 0 below -87.3
   (where results would be subnormal), inf above 88.7, NaN kept */
static inline v16 exp16(v16 x) {
  i16v over = x > 88.7f, under = x < -87.3f, nan = x != x;
  v16 t = select16(over | under | nan, splat(0.f), x);
  v16 n = (t * 1.44269504f + 12582912.f) - 12582912.f;  /* round to nearest: 1.5 * 2^23 */
  v16 r = t - n * 0.693145752f - n * 1.42860677e-6f;
  v16 p = 1.f + r * (1.f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833336077f + r * 0.00138889242f)))));
  v16 y = p * (v16)((__builtin_convertvector(n, i16v) + 127) << 23);
  y = select16(over, splat(__builtin_inff()), y);
  y = select16(under, splat(0.f), y);
  return select16(nan, x, y);
}

/* 16 keep factors: ks where the draw's low 15 bits reach thr, else 0; 0 from lane L on. Reads W draws:
   the caller's buffer has W of slack past its end. */
static inline v16 keep16(const int16_t *draws, int L, int thr, float ks) {
  h16v d;
  memcpy(&d, draws, sizeof d);
  i16v kept = ((__builtin_convertvector(d, i16v) & 0x7FFF) >= thr) & (LANE < L);
  return (v16)(kept & (i16v)splat(ks));
}

/* the lanes of keys c0 .. c0 + 15 that row `row` of a boolean or causal mask keeps (query i); the additive
   terms of an additive one */
static inline i16v kept_lanes(Mask m, int64_t row, int i, int c0, int L) {
  if (m.causal) return LANE + c0 <= i;
  b16v keep = {0};
  int n = L - c0 < W ? L - c0 : W;
  if (m.sj == 1 && n == W) memcpy(&keep, m.keep + row + c0, W);
  else for (int j = 0; j < n; j++) keep[j] = m.keep[row + (c0 + j) * m.sj];
  return __builtin_convertvector(keep, i16v) != 0;
}

static inline v16 added(Mask m, int64_t row, int c0, int L) {
  v16 a = {0};
  int n = L - c0 < W ? L - c0 : W;
  if (m.sj == 1 && n == W) a = load16(m.add + row + c0);
  else for (int j = 0; j < n; j++) a[j] = m.add[row + (c0 + j) * m.sj];
  return a;
}

/* c[i][0:W] = sum_k a[i][k] b[k][0:W] for i < rows, k < inner; rows of a, b, c at strides sa, sb, sc;
   `zero`: at least `inner` zeros, the rows that fill the last register block */
static void small_gemm(const float *a, int64_t sa, int rows, int inner, const float *b, int64_t sb, float *c, int64_t sc,
                       const float *zero) {
  for (int i0 = 0; i0 < rows; i0 += RB) {
    const float *r[RB];
    for (int t = 0; t < RB; t++) r[t] = i0 + t < rows ? a + (i0 + t) * sa : zero;
    v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0}, c5 = {0}, c6 = {0}, c7 = {0};
    for (int k = 0; k < inner; k++) {
      v16 x = load16(b + k * sb);
      c0 += r[0][k] * x; c1 += r[1][k] * x; c2 += r[2][k] * x; c3 += r[3][k] * x;
      c4 += r[4][k] * x; c5 += r[5][k] * x; c6 += r[6][k] * x; c7 += r[7][k] * x;
    }
    v16 cs[RB] = {c0, c1, c2, c3, c4, c5, c6, c7};
    for (int t = 0; t < RB && i0 + t < rows; t++) store16(c + (i0 + t) * sc, cs[t]);
  }
}

#if defined(__clang__)
#define MERGE(a, b, n) __builtin_shufflevector(a, b, MERGE_##n)
#else
#define MERGE(a, b, n) __builtin_shuffle(a, b, (i16v){MERGE_##n})
#endif
/* one stage of a 16x16 transpose: LO_s/HI_s swap the off-diagonal s x s blocks of rows i and i + s */
#define MERGE_LO8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define MERGE_HI8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define MERGE_LO4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define MERGE_HI4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define MERGE_LO2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define MERGE_HI2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define MERGE_LO1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define MERGE_HI1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define STAGE(s)                                   \
  for (int i = 0; i < W; i++)                      \
    if (!(i & s)) {                                \
      v16 a = r[i], b = r[i + s];                  \
      r[i] = MERGE(a, b, LO##s);                   \
      r[i + s] = MERGE(a, b, HI##s);               \
    }

/* x (L rows of D floats at stride sl, D a multiple of W) -> xt (D rows at stride st, L padded to a
   multiple of W with zeros): 16 x 16 blocks transposed in registers */
static void transpose(const float *x, int64_t sl, int L, int D, float *xt, int64_t st) {
  for (int j0 = 0; j0 < L; j0 += W)
    for (int d0 = 0; d0 < D; d0 += W) {
      v16 r[W];
      for (int j = 0; j < W; j++) r[j] = j0 + j < L ? load16(x + (j0 + j) * sl + d0) : splat(0.f);
      STAGE(8) STAGE(4) STAGE(2) STAGE(1)
      for (int d = 0; d < W; d++) store16(xt + (d0 + d) * st + j0, r[d]);
    }
}

static int padded(int n) { return (n + W - 1) / W * W; }

/* rows in the register block from i0 */
static int rows(int i0, int L) { return L - i0 < RB ? L - i0 : RB; }

/* keys the queries of the block from i0 see: all, or under a causal mask those up to its last query (the
   products with hidden keys are skipped, not multiplied by an exact zero: an inf or NaN in a hidden key or
   its value reaches neither the output nor the earlier blocks' query gradients, as it would through
   PyTorch's products) */
static int seen(Mask m, int i0, int Lq, int Lk) {
  int last = i0 + rows(i0, Lq);
  return m.causal && last < Lk ? last : Lk;
}

/* `count` 64-byte aligned scratch blocks of `floats` floats each, zeroed; NULL when out of memory */
static float *scratch(size_t count, size_t floats) {
  size_t bytes = (count * floats * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

/* one row of scores s (Lk of them, chunks of W) -> its softmax (into probs, W slack past Lk) and, in s,
   the softmax times the keep factors */
static void softmax_row(float *s, int i, int Lk, Mask m, int64_t row, float scale, const int16_t *draws, int thr,
                        float ks, float *probs) {
  v16 mx = splat(-__builtin_inff()), sum = {0};
  for (int c0 = 0; c0 < Lk; c0 += W) {
    v16 x = load16(s + c0) * scale;
    if (m.keep || m.causal) x = select16(kept_lanes(m, row, i, c0, Lk), x, splat(-FLT_MAX)); /* a fully masked row: uniform */
    if (m.add) x += added(m, row, c0, Lk);
    x = select16(LANE + c0 < Lk, x, splat(-__builtin_inff()));
    store16(s + c0, x);
    mx = max16(mx, x);
  }
  mx = all_max(mx);
  for (int c0 = 0; c0 < Lk; c0 += W) {
    v16 e = exp16(load16(s + c0) - mx);
    store16(s + c0, e);
    sum += e;
  }
  sum = all_sum(sum);
  for (int c0 = 0; c0 < Lk; c0 += W) {
    v16 p = load16(s + c0) / sum;
    store16(probs + c0, p); /* lanes past Lk: the next row's, or slack */
    store16(s + c0, p * keep16(draws + c0, Lk - c0, thr, ks));
  }
}

/* out = dropout(softmax(scale q k^T + mask)) v per (b, h); probs (B, H, Lq, Lk) gets the softmax before
   dropout (with W floats of slack past its end), for the backward. Returns 1 when out of memory. */
int attention_forward(int B, int H, int Lq, int Lk, int D, In q, In k, In v, Mask m, float scale,
                      const int16_t *draws, int thr, float ks, Out out, float *probs) {
  int Lkp = padded(Lk);
  size_t block = (size_t)(D > Lkp ? D : Lkp) * (Lq > D ? Lq : D);
  float *buffer = scratch(3, block);
  if (!buffer) return 1;
  float *kt = buffer, *S = buffer + block, *zero = buffer + 2 * block;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *qb = q.p + b * q.sb + h * q.sh, *vb = v.p + b * v.sb + h * v.sh;
      transpose(k.p + b * k.sb + h * k.sh, k.sl, Lk, D, kt, Lkp);
      for (int i0 = 0; i0 < Lq; i0 += RB)
        for (int c0 = 0; c0 < seen(m, i0, Lq, Lk); c0 += W)
          small_gemm(qb + i0 * q.sl, q.sl, rows(i0, Lq), D, kt + c0, Lkp, S + (int64_t)i0 * Lkp + c0, Lkp, zero);
      int64_t base = ((int64_t)b * H + h) * Lq * Lk;
      for (int i = 0; i < Lq; i++)
        softmax_row(S + (int64_t)i * Lkp, i, Lk, m, b * m.sb + h * m.sh + i * m.si, scale, draws + base + (int64_t)i * Lk,
                    thr, ks, probs + base + (int64_t)i * Lk);
      float *o = out.p + b * out.sb + h * out.sh;
      for (int i0 = 0; i0 < Lq; i0 += RB)
        for (int d0 = 0; d0 < D; d0 += W)
          small_gemm(S + (int64_t)i0 * Lkp, Lkp, rows(i0, Lq), seen(m, i0, Lq, Lk), vb + d0, v.sl, o + i0 * out.sl + d0,
                     out.sl, zero);
    }
  free(buffer);
  return 0;
}

/* gradients of attention_forward's output: gq, gk, gv from go, the same mask and the saved probs.
   Returns 1 when out of memory. */
int attention_backward(int B, int H, int Lq, int Lk, int D, In q, In k, In v, In go, Mask m, float scale,
                       const int16_t *draws, int thr, float ks, const float *probs, Out gq, Out gk, Out gv) {
  int Lkp = padded(Lk), Lqp = padded(Lq);
  size_t block = (size_t)(D > Lkp ? D : Lkp) * (Lqp > D ? Lqp : D);
  float *buffer = scratch(6, block);
  if (!buffer) return 1;
  float *vt = buffer, *dS = buffer + block, *Pk = buffer + 2 * block, *dST = buffer + 3 * block, *PT = buffer + 4 * block,
        *zero = buffer + 5 * block;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *qb = q.p + b * q.sb + h * q.sh, *kb = k.p + b * k.sb + h * k.sh, *gob = go.p + b * go.sb + h * go.sh;
      transpose(v.p + b * v.sb + h * v.sh, v.sl, Lk, D, vt, Lkp);
      for (int i0 = 0; i0 < Lq; i0 += RB)
        for (int c0 = 0; c0 < seen(m, i0, Lq, Lk); c0 += W)
          small_gemm(gob + i0 * go.sl, go.sl, rows(i0, Lq), D, vt + c0, Lkp, dS + (int64_t)i0 * Lkp + c0, Lkp, zero);
      int64_t base = ((int64_t)b * H + h) * Lq * Lk;
      for (int i = 0; i < Lq; i++) {
        const float *p_i = probs + base + (int64_t)i * Lk;
        const int16_t *d_i = draws + base + (int64_t)i * Lk;
        float *ds = dS + (int64_t)i * Lkp, *pk = Pk + (int64_t)i * Lkp;
        v16 r = {0};
        for (int c0 = 0; c0 < Lk; c0 += W) {
          v16 p = select16(LANE + c0 < Lk, load16(p_i + c0), splat(0.f)), kp = keep16(d_i + c0, Lk - c0, thr, ks);
          v16 dp = load16(ds + c0) * kp;
          if (m.causal) dp = select16(LANE + c0 <= i, dp, splat(0.f)); /* keys past i: not computed */
          store16(ds + c0, dp);
          store16(pk + c0, p * kp);
          r += dp * p;
        }
        r = all_sum(r);
        int64_t row = b * m.sb + h * m.sh + i * m.si;
        for (int c0 = 0; c0 < Lk; c0 += W) {
          v16 p = select16(LANE + c0 < Lk, load16(p_i + c0), splat(0.f));
          v16 g = p * (load16(ds + c0) - r) * scale;
          if (m.keep || m.causal) g = select16(kept_lanes(m, row, i, c0, Lk), g, splat(0.f)); /* filled: no gradient */
          store16(ds + c0, g);
        }
      }
      transpose(dS, Lkp, Lq, Lkp, dST, Lqp);
      transpose(Pk, Lkp, Lq, Lkp, PT, Lqp);
      float *gqb = gq.p + b * gq.sb + h * gq.sh, *gkb = gk.p + b * gk.sb + h * gk.sh, *gvb = gv.p + b * gv.sb + h * gv.sh;
      for (int d0 = 0; d0 < D; d0 += W) {
        for (int i0 = 0; i0 < Lq; i0 += RB)
          small_gemm(dS + (int64_t)i0 * Lkp, Lkp, rows(i0, Lq), seen(m, i0, Lq, Lk), kb + d0, k.sl, gqb + i0 * gq.sl + d0,
                     gq.sl, zero);
        for (int j0 = 0; j0 < Lk; j0 += RB) {
          int first = m.causal ? (j0 < Lq ? j0 : Lq) : 0; /* under a causal mask key j is seen from query j on */
          small_gemm(dST + (int64_t)j0 * Lqp + first, Lqp, rows(j0, Lk), Lq - first, qb + first * q.sl + d0, q.sl,
                     gkb + j0 * gk.sl + d0, gk.sl, zero);
          small_gemm(PT + (int64_t)j0 * Lqp + first, Lqp, rows(j0, Lk), Lq - first, gob + first * go.sl + d0, go.sl,
                     gvb + j0 * gv.sl + d0, gv.sl, zero);
        }
      }
    }
  free(buffer);
  return 0;
}

/* y = x * ks * keep over n contiguous floats, and its gradient g * keep * ks: the products of the
   eager dropout (`x * ks * mask`) and of its autograd, in their order, so the same bits */
void dropout_forward(int64_t n, const float *x, const int16_t *draws, int thr, float ks, float *y) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * ks * (float)((draws[i] & 0x7FFF) >= thr);
}

void dropout_backward(int64_t n, const float *g, const int16_t *draws, int thr, float ks, float *gx) {
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] * (float)((draws[i] & 0x7FFF) >= thr) * ks;
}

/* erf-GELU y = x Phi(x) and its slope dy = Phi(x) + x phi(x), over n contiguous floats: PyTorch's CPU
   formulas (erf by Abramowitz-Stegun 7.1.26, as its vectorized erf), one exp serving erf and phi, so
   the backward is one product g * dy instead of a second pass through erf and exp */
/* z = dropout(a) + r and y = LayerNorm(z) (gamma, beta, eps) over rows of C floats (C a multiple of W):
   BERT's post-norm residual. The dropout's products are fast_dropout's (draws NULL: p = 0, a as is);
   z and each row's mean and 1/std are kept for the backward. */
void residual_norm_forward(int64_t rows, int C, const float *a, const float *r, const int16_t *draws, int thr, float ks,
                           const float *gamma, const float *beta, float eps, float *z, float *mean, float *rstd, float *y) {
  for (int64_t i = 0; i < rows; i++) {
    const float *ai = a + i * C, *ri = r + i * C;
    float *zi = z + i * C, *yi = y + i * C;
    if (draws) {
      const int16_t *di = draws + i * C;
      for (int c = 0; c < C; c++) zi[c] = ai[c] * ks * (float)((di[c] & 0x7FFF) >= thr) + ri[c];
    } else {
      for (int c = 0; c < C; c++) zi[c] = ai[c] + ri[c];
    }
    v16 s = {0}, q = {0};
    for (int c = 0; c < C; c += W) s += load16(zi + c);
    float m = all_sum(s)[0] / C;
    for (int c = 0; c < C; c += W) {
      v16 d = load16(zi + c) - m;
      q += d * d;
    }
    float rs = 1.f / __builtin_sqrtf(all_sum(q)[0] / C + eps);
    mean[i] = m;
    rstd[i] = rs;
    for (int c = 0; c < C; c++) yi[c] = (zi[c] - m) * rs * gamma[c] + beta[c];
  }
}

/* gradients of residual_norm_forward: ga (through the dropout), gr, and gamma's and beta's, added into
   ggamma and gbeta (zeroed by the caller) */
void residual_norm_backward(int64_t rows, int C, const float *gy, const float *z, const float *mean, const float *rstd,
                            const float *gamma, const int16_t *draws, int thr, float ks, float *ga, float *gr,
                            float *ggamma, float *gbeta) {
  for (int64_t i = 0; i < rows; i++) {
    const float *gi = gy + i * C, *zi = z + i * C;
    float m = mean[i], rs = rstd[i];
    v16 sg = {0}, sgx = {0};
    for (int c = 0; c < C; c += W) {
      v16 xhat = (load16(zi + c) - m) * rs, g = load16(gi + c), gg = g * load16(gamma + c);
      sg += gg;
      sgx += gg * xhat;
      store16(ggamma + c, load16(ggamma + c) + g * xhat);
      store16(gbeta + c, load16(gbeta + c) + g);
    }
    float mg = all_sum(sg)[0] / C, mgx = all_sum(sgx)[0] / C;
    float *gai = ga + i * C, *gri = gr + i * C;
    for (int c = 0; c < C; c++) gri[c] = rs * (gi[c] * gamma[c] - mg - (zi[c] - m) * rs * mgx);
    if (draws) {
      const int16_t *di = draws + i * C;
      for (int c = 0; c < C; c++) gai[c] = gri[c] * (float)((di[c] & 0x7FFF) >= thr) * ks;
    } else {
      memcpy(gai, gri, C * sizeof(float));
    }
  }
}
