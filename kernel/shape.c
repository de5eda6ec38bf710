/* kernel/shape.c — the loop structure of a kernel as both tiers build it: the passes of
 * folding members, the mix kernel's packed path, the outer parallel extent of the kernel
 * ABI and column mode's splits (kernel.h). */
#include <string.h>

#include "kernel.h"

/* ---- passes ------------------------------------------------------------------------------ */

int kn_passes(Op op, KnPass *ps) {
  switch (op) {
  case OP_REDUCE_SUM: ps[0] = (KnPass){FOLD_SUM, W_VALUE, KP_COPY, KD_VALUE}; return 1;
  case OP_REDUCE_MEAN: ps[0] = (KnPass){FOLD_SUM, W_VALUE, KP_MEAN, KD_VALUE}; return 1;
  case OP_REDUCE_MAX: ps[0] = (KnPass){FOLD_MAX, W_VALUE, KP_COPY, KD_VALUE}; return 1;
  case OP_REDUCE_MIN: ps[0] = (KnPass){FOLD_MIN, W_VALUE, KP_COPY, KD_VALUE}; return 1;
  case OP_REDUCE_PROD: ps[0] = (KnPass){FOLD_PROD, W_VALUE, KP_COPY, KD_VALUE}; return 1;
  case OP_ARGMAX: ps[0] = (KnPass){FOLD_MAX, W_ARGMAX, KP_COPY, KD_VALUE}; return 1;
  case OP_SOFTMAX: case OP_LOG_SOFTMAX:
    ps[0] = (KnPass){FOLD_MAX_ORD, W_VALUE, KP_COPY, KD_N1};
    ps[1] = (KnPass){FOLD_SUM, W_EXP_SHIFTED, op == OP_SOFTMAX ? KP_RECIP : KP_LOGADD, KD_N2};
    return 2;
  case OP_LAYERNORM:
    ps[0] = (KnPass){FOLD_SUM, W_VALUE, KP_MEAN, KD_N1};
    ps[1] = (KnPass){FOLD_SUM, W_SQ_CENTERED, KP_RSQRT, KD_N2};
    return 2;
  case OP_RMSNORM: ps[0] = (KnPass){FOLD_SUM, W_SQ, KP_RSQRT, KD_N2}; return 1;
  default: return 0;
  }
}

/* ---- dims and operands against the domain ------------------------------------------------ */

KnDim kn_dim(const Partition *p, const Kernel *k, Dim d) {
  KnDim x = {0, -1};
  if (!ir_dim_is_const(p->g, d, &x.c))
    for (uint32_t q = 0; q < k->ndims; q++)
      if (p->dims.v[k->dims + q] == d) return (KnDim){0, (int32_t)q};
  return x; /* a symbolic dim not among the parameters cannot be: fu_key numbers them all */
}

int kn_domain_axis(int r, uint32_t axes, int n, int t, int ctx) {
  if (!ctx) return t + (r - n);
  int pos = t + (r - __builtin_popcount(axes) - n);
  for (int d = 0; d < r; d++)
    if (!(axes >> d & 1) && pos-- == 0) return d;
  return -1;
}

void kn_layout(const KnKernel *kk, uint32_t v, int ctx, KnLayout *out) {
  const KnVal *x = &kk->val[v];
  out->rank = x->rank;
  for (int t = 0; t < x->rank; t++) {
    int dk = kn_domain_axis(kk->r, kk->axes, x->rank, t, ctx);
    bool bcast = dk < 0 || (kn_dim_is(x->dim[t], 1) && !kn_dim_eq(x->dim[t], kk->dom[dk]));
    out->axis[t] = (int8_t)(bcast ? -1 : dk);
    out->dim[t] = x->dim[t];
  }
}

bool kn_is_full(const Graph *g, const Kernel *k, uint32_t v) {
  const Node *a = ir_node(g, v), *d = ir_node(g, k->domain);
  return a->rank == d->rank && !memcmp(ir_shape(g, v), ir_shape(g, k->domain), a->rank * sizeof(Dim));
}

/* ---- stores and the packed path ---------------------------------------------------------- */

int kn_full_output(const Partition *p, const Kernel *k) {
  for (uint32_t o = 0; o < k->noutputs; o++) {
    uint32_t u = fu_outputs(p, k)[o];
    if (ir_node(p->g, u)->dtype == DT_F32 && kn_is_full(p->g, k, u)) return (int)o;
  }
  return -1;
}

/* Does mix kernel k take the packed path, and how? Every f32 matmul with an f32
 * full-shaped output to hold the sums, but a 2-D b that is a kernel input other than a
 * param with a read in place (mix_rows and the few-rows path stream it as it is). */
bool kn_pack_form(const Partition *p, const Kernel *k, KnPack *f) {
  const Graph *g = p->g;
  if (k->kind != KK_MIX) return false;
  uint32_t v = UINT32_MAX;
  for (uint32_t i = 0; i < k->nmembers; i++)
    if (ir_node(g, fu_members(p, k)[i])->op == OP_MATMUL) v = fu_members(p, k)[i];
  if (v == UINT32_MAX) return false;
  uint32_t a = ir_operand(g, v, 0), b = ir_operand(g, v, 1);
  const Node *an = ir_node(g, a), *bn = ir_node(g, b), *d = ir_node(g, k->domain);
  if (an->dtype != DT_F32 || bn->dtype != DT_F32 || bn->rank < 2) return false;
  int ia = -1, ib = -1;
  for (uint32_t i = 0; i < k->ninputs; i++) {
    if (fu_inputs(p, k)[i] == a) ia = (int)i;
    if (fu_inputs(p, k)[i] == b) ib = (int)i;
  }
  if (an->rank < 2 && (ia < 0 || bn->rank != 2)) return false; /* a vector a: one row, read in place */
  *f = (KnPack){.a = a, .b = b, .ta = ir_attr_int(g, v, AK_TRANSPOSE_A, 0) != 0,
                .tb = ir_attr_int(g, v, AK_TRANSPOSE_B, 0) != 0, .batched = bn->rank > 2};
  f->adirect = ia >= 0 && !f->ta && an->rank == d->rank &&
               !memcmp(ir_shape(g, a), ir_shape(g, k->domain), (size_t)(d->rank - 1) * sizeof(Dim));
  f->bpre = ib >= 0 && !f->tb && bn->rank == 2 && bn->op == OP_PARAM ? ib : -1;
  f->prologue = ia < 0 && kn_is_norm((Op)an->op); /* a member: computed here, not read */
  bool general = f->ta || f->tb || bn->rank != 2 || ia < 0 || ib < 0;
  if (f->bpre < 0 && !general) return false;
  return kn_full_output(p, k) >= 0; /* the sums need an f32 full-shaped output */
}

bool kn_mix_prologue(const Partition *p, const Kernel *k) {
  KnPack f;
  return kn_pack_form(p, k, &f) && f.prologue;
}

/* ---- extent and splits ---------------------------------------------------------------- */

/* Column mode: columns per item of the outer range. The item's stack arrays take up to 32
 * bytes per column for the fold accumulators (f32, i32, i64 and argmax's pairs) and 8 per
 * member with passes (its red, or its n1 and n2): at most COL_STACK bytes. */
enum { COL_CHUNK = 4096, COL_STACK = 160 << 10 };

/* Elements a block of a split column kernel folds at least (a few grains' work). */
enum { SPLIT_MIN = 64 << 10 };

int64_t kn_chunk(const KnKernel *kk, int lanes) {
  int64_t ch = COL_CHUNK;
  while (ch > (int64_t)lanes * KN_COL_VECS && ch * (32 + 8 * kk->states) > COL_STACK) ch /= 2;
  return ch;
}

/* Does value v of kernel k depend on a member that folds (a reduction or normalization)? */
static bool after_fold(const Partition *p, const Kernel *k, uint32_t v, int depth) {
  KnPass ps[2];
  for (uint32_t m = 0; m < k->nmembers; m++) {
    if (fu_members(p, k)[m] != v) continue;
    if (kn_passes((Op)ir_node(p->g, v)->op, ps)) return true;
    if (depth > 64) return true; /* deep chains: assume so */
    for (uint32_t i = 0; i < ir_node(p->g, v)->nin; i++)
      if (after_fold(p, k, ir_operand(p->g, v, i), depth + 1)) return true;
  }
  return false;
}

/* Can column-mode kernel k split its reduced rows (see col_split_item)? Its folds (one
 * per folding member: each has a block of accumulators in the scratch), or 0 if not. */
int kn_col_splits(const Partition *p, const Kernel *k) {
  const Graph *g = p->g;
  if (!kn_col_mode(g, k)) return 0;
  int folds = 0;
  for (uint32_t m = 0; m < k->nmembers; m++) {
    uint32_t v = fu_members(p, k)[m];
    KnPass ps[2];
    int np = kn_passes((Op)ir_node(g, v)->op, ps);
    if (np > 1) return 0;
    if (np && after_fold(p, k, ir_operand(g, v, 0), 0)) return 0;
    folds += np;
  }
  const Node *d = ir_node(g, k->domain);
  for (uint32_t o = 0; o < k->noutputs; o++) {
    uint32_t u = fu_outputs(p, k)[o];
    const Node *n = ir_node(g, u);
    if (n->rank == d->rank && !memcmp(ir_shape(g, u), ir_shape(g, k->domain), d->rank * sizeof(Dim))) return 0;
  }
  return folds;
}

/* Kernel kk's domain under dims: the product of its parallel outer axes, of the reduced
 * outer axes (column and multi mode), the last axis and the one before it. */
static void extent_dims(const KnKernel *kk, const int64_t *dims, int64_t *rows, int64_t *reduced, int64_t *last,
                        int64_t *m_rows) {
  *rows = 1, *reduced = 1, *last = 1, *m_rows = 1;
  for (int i = 0; i < kk->r; i++) {
    int64_t v = kk->dom[i].q >= 0 ? dims[kk->dom[i].q] : kk->dom[i].c;
    if (i + 2 == kk->r) *m_rows = v;
    if (i + 1 == kk->r) *last = v;
    else if ((kk->col || kk->multi) && (kk->axes >> i & 1)) *reduced *= v;
    else *rows *= v;
  }
}

/* Column mode's groups: kept outer rows times chunks of columns; *R the reduced rows and
 * *cols the columns of a group (the last chunk's may be fewer). */
static int64_t col_groups(const KnKernel *kk, const int64_t *dims, int lanes, int64_t *R, int64_t *cols) {
  int64_t rows, last, m_rows;
  extent_dims(kk, dims, &rows, R, &last, &m_rows);
  int64_t ch = kn_chunk(kk, lanes);
  *cols = last < ch ? last : ch;
  return rows * ((last + ch - 1) / ch);
}

int64_t kn_col_blocks(const KnKernel *kk, const int64_t *dims, int lanes, int threads, int64_t *finish,
                      size_t *scratch) {
  *finish = 0, *scratch = 0;
  int folds = threads < 2 || kk->kind == KK_EXTERN ? 0 : kk->splits;
  if (!folds) return 1;
  int64_t R, cols, G = col_groups(kk, dims, lanes, &R, &cols);
  if (G >= 2 * (int64_t)threads || G < 1) return 1;
  int64_t P = (2 * (int64_t)threads + G - 1) / G, most = R * cols / SPLIT_MIN;
  if (P > most) P = most;
  if (P > R) P = R;
  if (P < 2) return 1;
  int64_t W = (int64_t)lanes * KN_COL_VECS;
  *finish = G;
  *scratch = (size_t)(G * P * folds) * (size_t)((cols + W - 1) / W) * KN_SPLIT_BLOCK * (size_t)W;
  return P;
}

int64_t kn_extent(const KnKernel *kk, const int64_t *dims, int lanes, int64_t *item) {
  int64_t rows, reduced, last, m_rows;
  if (kk->kind == KK_EXTERN) { /* one call, never split */
    if (item) *item = 1;
    return 1;
  }
  extent_dims(kk, dims, &rows, &reduced, &last, &m_rows);
  if (kk->packed) { /* packed mix: products x row blocks x panels (cg_pk_items) */
    KnTile t = kn_tile(lanes);
    int64_t mg = kk->pack.batched ? m_rows : rows, prods = mg ? rows / mg : 0;
    if (item) *item = (mg < t.mc ? mg : t.mc) * t.nr;
    return prods * ((mg + t.mc - 1) / t.mc) * ((last + t.nr - 1) / t.nr);
  }
  if (kk->col) { /* groups of up to kn_chunk columns, or P blocks of each */
    int64_t cols, G = col_groups(kk, dims, lanes, &reduced, &cols), P = dims[kk->ndims] > 1 ? dims[kk->ndims] : 1;
    if (item) *item = (reduced + P - 1) / P * cols;
    return P * G;
  }
  if (item) *item = last * reduced;
  return rows;
}
