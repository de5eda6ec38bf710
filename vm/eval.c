/* vm/eval.c — a kernel's values as bytecode: the dim table, positions and the buffers'
 * bases, views as index programs on scalars (affine in the lanes: s + k·(j + t)) or on
 * index tiles (the lowered kernel's index maps, as jit/views.c's), and the lowered
 * programs' entries (KnProg) run in order (enc_eval), each member's instruction on its
 * operands' values, switching over the lowered instructions. */
#include <string.h>

#include "enc.h"

int enc_dim_index(Enc *e, KnDim d) {
  for (uint32_t i = 0; i < e->dimtab.n; i++)
    if (kn_dim_eq((KnDim){e->dimtab.v[i].c, e->dimtab.v[i].q}, d)) return (int)i;
  vec_push_from(e->dimtab, e->few->dimtab, ((VmDim){d.c, d.q}));
  return (int)e->dimtab.n - 1;
}

Sv enc_sconst(Enc *e, int64_t c) { return (Sv){enc_emit(e, VM_SK, 0, 0, enc_pool_add(e, c)), true, c}; }

static Sv sdim(Enc *e, KnDim d) {
  if (d.q < 0) return enc_sconst(e, d.c);
  enc_dim_index(e, d); /* in the table for the drivers too */
  return (Sv){enc_emit(e, VM_SDIM, 0, 0, d.q), false, 0};
}

static Sv sbin(Enc *e, VmOp op, Sv a, Sv b) {
  if (a.isc && b.isc) {
    uint64_t x = (uint64_t)a.c, y = (uint64_t)b.c;
    switch (op) {
    case VM_SADD: return enc_sconst(e, (int64_t)(x + y));
    case VM_SSUB: return enc_sconst(e, (int64_t)(x - y));
    case VM_SMUL: return enc_sconst(e, (int64_t)(x * y));
    case VM_SDIV: if (b.c > 0) return enc_sconst(e, a.c / b.c); break;
    case VM_SREM: if (b.c > 0) return enc_sconst(e, a.c % b.c); break;
    default: break;
    }
  }
  if (op == VM_SADD && a.isc && a.c == 0) return b;
  if ((op == VM_SADD || op == VM_SSUB) && b.isc && b.c == 0) return a;
  if (op == VM_SMUL && b.isc && b.c == 1) return a;
  return (Sv){enc_emit(e, op, a.reg, b.reg, 0), false, 0};
}

/* The position register of domain axis d. */
Sv enc_sidx(int d) { return (Sv){VS_IDX + d, false, 0}; }

/* The base register of buffer `buf` (value number u) read in alignment ctx (jit/emit.c
 * cg_value_base); *inner: its stride along the lanes (0 or 1). */
int enc_base_reg(Enc *e, uint32_t buf, uint32_t u, int ctx, int *inner) {
  KnLayout lay;
  kn_layout(e->kk, u, ctx, &lay);
  VmBase b = {.buf = buf, .rank = (uint8_t)lay.rank};
  *inner = 0;
  for (int t = 0; t < lay.rank; t++) {
    b.axis[t] = lay.axis[t];
    b.dim[t] = (uint16_t)enc_dim_index(e, lay.dim[t]);
    if (lay.axis[t] == e->r - 1) *inner = 1;
  }
  for (uint32_t i = 0; i < e->base.n; i++) {
    const VmBase *o = &e->base.v[i];
    if (o->buf == buf && o->rank == b.rank && !memcmp(o->axis, b.axis, sizeof b.axis) &&
        !memcmp(o->dim, b.dim, sizeof b.dim))
      return o->reg;
  }
  b.reg = (uint8_t)enc_news(e);
  vec_push_from(e->base, e->few->base, b);
  return b.reg;
}

/* ---- views: index maps (jit/views.c cg_view_at) ------------------------------------------------ */

Ix enc_ix_s(Sv s) { return (Ix){s, 0, -1}; }

static int ix_vec(Enc *e, Ix a) {
  if (a.v >= 0) return a.v;
  return enc_emit(e, VM_XAFF, a.s.reg, 0, (int32_t)a.k);
}

static Ix ix_add(Enc *e, Ix a, Ix b) {
  if (a.v < 0 && b.v < 0) return (Ix){sbin(e, VM_SADD, a.s, b.s), a.k + b.k, -1};
  if (b.v < 0 && b.k == 0) return (Ix){a.s, 0, enc_emit(e, VM_XADDS, a.v, b.s.reg, 0)};
  if (a.v < 0 && a.k == 0) return (Ix){b.s, 0, enc_emit(e, VM_XADDS, b.v, a.s.reg, 0)};
  return (Ix){a.s, 0, enc_emit(e, VM_XADD, ix_vec(e, a), ix_vec(e, b), 0)};
}

static Ix ix_mul(Enc *e, Ix a, Sv m) {
  if (a.v < 0 && (!a.k || m.isc)) return (Ix){sbin(e, VM_SMUL, a.s, m), a.k ? a.k * m.c : 0, -1};
  return (Ix){a.s, 0, enc_emit(e, VM_XMULS, ix_vec(e, a), m.reg, 0)};
}

static void ix_divmod(Enc *e, Ix a, Sv m, Ix *q, Ix *r) {
  if (a.v < 0 && !a.k) {
    *q = enc_ix_s(sbin(e, VM_SDIV, a.s, m)), *r = enc_ix_s(sbin(e, VM_SREM, a.s, m));
    return;
  }
  if (a.v < 0 && m.isc && m.c == 1) {
    *q = a, *r = enc_ix_s(enc_sconst(e, 0));
    return;
  }
  int v = ix_vec(e, a);
  *q = (Ix){a.s, 0, enc_emit(e, VM_XDIVS, v, m.reg, 0)};
  *r = (Ix){a.s, 0, enc_emit(e, VM_XREMS, v, m.reg, 0)};
}

/* Value number u's row-major element offset at positions P. */
static Ix linearize(Enc *e, uint32_t u, const Ix *P) {
  const KnVal *x = &e->kk->val[u];
  const KnDim *sh = x->dim;
  Ix l = enc_ix_s(enc_sconst(e, 0));
  Sv stride = enc_sconst(e, 1);
  for (int t = x->rank - 1; t >= 0; t--) {
    l = ix_add(e, l, ix_mul(e, P[t], stride));
    if (t) stride = sbin(e, VM_SMUL, stride, sdim(e, sh[t]));
  }
  return l;
}



VmOp enc_by_dtype(DType t, VmOp f32, VmOp i32, VmOp i64, VmOp b) {
  return t == DT_I64 ? i64 : t == DT_I32 ? i32 : t == DT_BOOL ? b : f32;
}

/* Input i's lanes at element offset off. */
static int load_at(Enc *e, int i, Ix off) {
  DType dt = (DType)e->kk->val[i].t; /* input i is value i */
  if (off.v < 0 && !e->guarded)
    return enc_emit(e, enc_by_dtype(dt, VM_LD_F32, VM_LD_I32, VM_LD_I64, VM_LD_BOOL), off.s.reg, i, (int32_t)off.k);
  return enc_emit(e, enc_by_dtype(dt, VM_GA_F32, VM_GA_I32, VM_GA_I64, VM_GA_BOOL), ix_vec(e, off), i, e->mask);
}

static int lit(Enc *e, uint32_t u) {
  const KnConst *k = kn_const(e->kk, u);
  DType t = (DType)k->t;
  if (t == DT_BOOL) return enc_emit(e, VM_K_I32, 0, 0, enc_pool_add(e, k->i != 0));
  if (t == DT_I32) return enc_emit(e, VM_K_I32, 0, 0, enc_pool_add(e, (int32_t)(uint32_t)k->i));
  if (t == DT_I64) return enc_emit(e, VM_K_I64, 0, 0, enc_pool_add(e, k->i));
  return enc_constf(e, k->f);
}

int enc_view_at(Enc *e, uint32_t u, const Ix *P) {
  const KnKernel *kk = e->kk;
  int m = kn_member(kk, u);
  const KnIns *in = m >= 0 ? &kk->ins[m] : NULL;
  const KnView *w = in ? in->view : NULL;
  Ix Q[DVM_MAX_RANK];
  if (!w) { /* a literal, or a kernel input */
    if (kn_const(kk, u)) return lit(e, u);
    int i = kn_input(kk, u);
    if (i < 0) {
      enc_fail(e, "%s", "a view reads a value computed in the kernel");
      return enc_constf(e, 0);
    }
    return load_at(e, i, linearize(e, u, P));
  }
  int rank = kk->val[u].rank;
  switch ((KnViewKind)w->kind) {
  case KV_FULL: return lit(e, u);
  case KV_ARANGE: {
    int x = ix_vec(e, P[0]);
    if (in->t == DT_I64) return x;
    return enc_emit(e, in->t == DT_I32 ? VM_L2I : VM_L2F, x, 0, 0);
  }
  case KV_TRANSPOSE: {
    uint32_t x = in->arg[0];
    for (int k = 0; k < w->n; k++) Q[w->map[k]] = P[k];
    return enc_view_at(e, x, Q);
  }
  case KV_BROADCAST: {
    uint32_t x = in->arg[0];
    for (int t = 0; t < w->n; t++) Q[t] = w->map[t] < 0 ? enc_ix_s(enc_sconst(e, 0)) : P[w->map[t]];
    return enc_view_at(e, x, Q);
  }
  case KV_SLICE: {
    uint32_t x = in->arg[0];
    for (int d = 0; d < rank; d++) Q[d] = P[d];
    for (uint32_t i = 0; i < w->n; i++) {
      int a = w->saxis[i];
      int64_t step = w->step[i];
      Sv d = sdim(e, w->size[i]), v = sdim(e, w->start[i]);
      Sv start = {enc_emit(e, VM_SSLICE, v.reg, d.reg, step > 0 ? 1 : -1), false, 0};
      Q[a] = ix_add(e, enc_ix_s(start), ix_mul(e, P[a], enc_sconst(e, step)));
    }
    return enc_view_at(e, x, Q);
  }
  case KV_CONCAT: {
    int a = w->axis;
    bool wide = in->t == DT_I64;
    Sv off = enc_sconst(e, 0);
    int res = -1, mask0 = e->mask;
    bool guarded0 = e->guarded;
    int at = ix_vec(e, P[a]);
    for (uint32_t q = 0; q < w->n; q++) {
      uint32_t x = in->arg[q];
      Sv end = sbin(e, VM_SADD, off, sdim(e, w->csize[q]));
      int in = enc_emit(e, VM_XIN, at, off.reg, end.reg);
      for (int d = 0; d < rank; d++) Q[d] = P[d];
      Q[a] = ix_add(e, P[a], enc_ix_s(sbin(e, VM_SSUB, enc_sconst(e, 0), off)));
      e->mask = mask0 >= 0 ? enc_emit(e, VM_AND, mask0, in, 0) : in, e->guarded = true;
      int val = enc_view_at(e, x, Q);
      res = res >= 0 ? enc_emit(e, wide ? VM_SELW : VM_SEL, in, val, res) : val;
      off = end;
    }
    e->mask = mask0, e->guarded = guarded0;
    return res;
  }
  case KV_GATHER: { /* jit/views.c cg_view_at: indices read from a buffer the runtime checked */
    uint32_t x = in->arg[0], iv = in->arg[1];
    int xr = kk->val[x].rank, ir = kk->val[iv].rank;
    int a = w->axis;
    Ix Pi[DVM_MAX_RANK];
    for (int t = 0; t < ir; t++) Pi[t] = P[a + t];
    int at = enc_view_at(e, iv, Pi);
    if (kk->val[iv].t == DT_I32) at = enc_emit(e, VM_I2L, at, 0, 0);
    at = enc_emit(e, VM_XWRAP, at, sdim(e, w->size[0]).reg, 0);
    for (int t = 0; t < a; t++) Q[t] = P[t];
    Q[a] = (Ix){enc_sconst(e, 0), 0, at};
    for (int t = a + 1; t < xr; t++) Q[t] = P[t + ir - 1];
    return enc_view_at(e, x, Q);
  }
  default: { /* KV_RESHAPE */
    uint32_t x = in->arg[0];
    Ix l = linearize(e, u, P);
    if (kn_input(kk, x) >= 0) return load_at(e, kn_input(kk, x), l);
    for (int t = w->n - 1; t >= 0; t--) {
      if (t == 0) {
        Q[0] = l;
        break;
      }
      ix_divmod(e, l, sdim(e, w->size[t]), &l, &Q[t]);
    }
    return enc_view_at(e, x, Q);
  }
  }
}

static int view_here(Enc *e, uint32_t u) {
  KnLayout lay;
  kn_layout(e->kk, u, e->ctx, &lay);
  Ix P[DVM_MAX_RANK];
  for (int t = 0; t < lay.rank; t++) {
    int dk = lay.axis[t];
    P[t] = dk < 0 ? enc_ix_s(enc_sconst(e, 0)) : dk == e->r - 1 ? (Ix){enc_sconst(e, 0), 1, -1} : enc_ix_s(enc_sidx(dk));
  }
  return enc_view_at(e, u, P);
}

/* ---- members ---------------------------------------------------------------------------- */

static int leaf_at(Enc *e, uint32_t q);

/* Operand i of instruction in (the member being evaluated): a leaf's read (e->rd.opq),
 * materialized now if it is not yet, or a member's value. */
static int operand(Enc *e, const KnIns *in, uint32_t i) {
  uint32_t u = in->arg[i];
  if (KN_LEAF(e->kk, u)) return leaf_at(e, e->rd.opq[i]);
  int r = e->memo[u - e->kk->nin];
  if (r < 0) {
    enc_fail(e, "%s", "internal: an operand read before its program evaluates it");
    return enc_constf(e, 0);
  }
  return r;
}

static int load_input(Enc *e, int i) {
  if (e->inmemo[2 * i + e->ctx] >= 0) return e->inmemo[2 * i + e->ctx];
  int inner, s = enc_base_reg(e, (uint32_t)i, (uint32_t)i, e->ctx, &inner); /* input i is value i */
  DType dt = (DType)e->kk->val[i].t;
  int x = enc_emit(e, enc_by_dtype(dt, VM_LD_F32, VM_LD_I32, VM_LD_I64, VM_LD_BOOL), s, i, inner);
  return e->inmemo[2 * i + e->ctx] = x;
}

static int cast(Enc *e, int x, DType from, DType to) {
  if (to == from) return x;
  VmOp op;
  if (to == DT_BOOL) op = from == DT_F32 ? VM_F2B : from == DT_I32 ? VM_I2B : VM_L2B;
  else if (from == DT_BOOL) op = to == DT_F32 ? VM_B2F : to == DT_I32 ? VM_B2I : VM_B2L;
  else if (to == DT_F32) op = from == DT_I32 ? VM_I2F : VM_L2F;
  else if (from == DT_F32) op = to == DT_I32 ? VM_F2I : VM_F2L;
  else op = to == DT_I64 ? VM_I2L : VM_L2I;
  return enc_emit(e, op, x, 0, 0);
}

/* A member's elementwise instruction in. */
static int elementwise(Enc *e, const KnIns *in) {
  DType t = (DType)in->t, a = (DType)in->a;
  int ar = kn_op_arity((KnOp)in->op);
  int x = operand(e, in, 0), y = ar >= 2 ? operand(e, in, 1) : -1;
  switch (in->op) {
  case KO_EQ: case KO_NE: case KO_LT: case KO_LE: case KO_GT: case KO_GE: {
    int d = in->op - KO_EQ;
    VmOp base = a == DT_F32 ? VM_FEQ : a == DT_I64 ? VM_LEQ : VM_IEQ; /* bool: 0/1 as i32 */
    return enc_emit(e, (VmOp)(base + d), x, y, 0);
  }
  case KO_AND: return enc_emit(e, VM_AND, x, y, 0);
  case KO_OR: return enc_emit(e, VM_OR, x, y, 0);
  case KO_NOT: return enc_emit(e, VM_NOT, x, 0, 0);
  case KO_SELECT: return enc_emit(e, t == DT_I64 ? VM_SELW : VM_SEL, x, y, operand(e, in, 2));
  case KO_CAST: return cast(e, x, a, t);
  default: break;
  }
  if (t == DT_I32 || t == DT_I64) {
    bool w = t == DT_I64;
    switch (in->op) {
    case KO_NEG: return enc_emit(e, w ? VM_LNEG : VM_INEG, x, 0, 0);
    case KO_ABS: return enc_emit(e, w ? VM_LABS : VM_IABS, x, 0, 0);
    case KO_RELU: return enc_emit(e, w ? VM_LRELU : VM_IRELU, x, 0, 0);
    case KO_SIGN: return enc_emit(e, w ? VM_LSIGN : VM_ISIGN, x, 0, 0);
    case KO_ADD: return enc_emit(e, w ? VM_LADD : VM_IADD, x, y, 0);
    case KO_SUB: return enc_emit(e, w ? VM_LSUB : VM_ISUB, x, y, 0);
    case KO_MUL: return enc_emit(e, w ? VM_LMUL : VM_IMUL, x, y, 0);
    case KO_MAX: return enc_emit(e, w ? VM_LMAX : VM_IMAX, x, y, 0);
    case KO_MIN: return enc_emit(e, w ? VM_LMIN : VM_IMIN, x, y, 0);
    default: enc_fail(e, "%s is not encoded for integers", kn_op_name((KnOp)in->op)); return x;
    }
  }
  switch (in->op) {
  case KO_NEG: return enc_emit(e, VM_NEG, x, 0, 0);
  case KO_ABS: return enc_emit(e, VM_ABS, x, 0, 0);
  case KO_EXP: return enc_emit(e, VM_EXP, x, 0, 0);
  case KO_LOG: return enc_emit(e, VM_LOG, x, 0, 0);
  case KO_SQRT: return enc_emit(e, VM_SQRT, x, 0, 0);
  case KO_RSQRT: return enc_emit(e, VM_RSQRT, x, 0, 0);
  case KO_RECIP: return enc_emit(e, VM_RECIP, x, 0, 0);
  case KO_TANH: return enc_emit(e, VM_TANH, x, 0, 0);
  case KO_SIGMOID: return enc_emit(e, VM_SIGMOID, x, 0, 0);
  case KO_RELU: return enc_emit(e, VM_RELU, x, 0, 0);
  case KO_GELU: return enc_emit(e, VM_GELU, x, 0, 0);
  case KO_GELU_TANH: return enc_emit(e, VM_GELU_TANH, x, 0, 0);
  case KO_SILU: return enc_emit(e, VM_SILU, x, 0, 0);
  case KO_ERF: return enc_emit(e, VM_ERF, x, 0, 0);
  case KO_SIN: return enc_emit(e, VM_SIN, x, 0, 0);
  case KO_COS: return enc_emit(e, VM_COS, x, 0, 0);
  case KO_FLOOR: return enc_emit(e, VM_FLOOR, x, 0, 0);
  case KO_CEIL: return enc_emit(e, VM_CEIL, x, 0, 0);
  case KO_ROUND: return enc_emit(e, VM_ROUND, x, 0, 0);
  case KO_SIGN: return enc_emit(e, VM_SIGN, x, 0, 0);
  case KO_ADD: return enc_emit(e, VM_ADD, x, y, 0);
  case KO_SUB: return enc_emit(e, VM_SUB, x, y, 0);
  case KO_MUL: return enc_emit(e, VM_MUL, x, y, 0);
  case KO_DIV: return enc_emit(e, VM_DIV, x, y, 0);
  case KO_POW: return enc_emit(e, VM_POW, x, y, 0);
  case KO_FMOD: return enc_emit(e, VM_FMOD, x, y, 0);
  case KO_MAX: return enc_emit(e, VM_MAX, x, y, 0);
  case KO_MIN: return enc_emit(e, VM_MIN, x, y, 0);
  case KO_CLIP:
    if (in->lo) x = enc_emit(e, VM_MAXK, x, 0, enc_pool_f(e, (float)in->flo));
    if (in->hi) x = enc_emit(e, VM_MINK, x, 0, enc_pool_f(e, (float)in->fhi));
    return x;
  default: enc_fail(e, "%s is not encoded", kn_op_name((KnOp)in->op)); return x;
  }
}

/* Leaf read q (KnProg) materialized, if it is not yet: a literal, an input loaded in the
 * read's alignment (once per program and alignment), a reduced member's slot. */
static int leaf_at(Enc *e, uint32_t q) {
  if (q >= e->kk->most) return enc_constf(e, 0); /* none (the encoding failed) */
  if (e->reads[q] >= 0) return e->reads[q];
  const KnKernel *kk = e->kk;
  uint32_t u = e->rd.v[q];
  int m = kn_member(kk, u), r, saved = e->ctx;
  e->ctx = e->rd.ctx[q];
  if (m < 0) r = u >= kk->nin ? lit(e, u) : load_input(e, (int)u);
  else if ((r = e->red[m]) < 0) enc_fail(e, "%s", "internal: a reduction read before its pass");
  e->ctx = saved;
  return e->reads[q] = r;
}

static void materialize(void *e, uint32_t q) { leaf_at(e, q); }

/* Before member m's code: the reads below its own materialized, its own taken
 * (kn_reads_take). */
static void take_reads(Enc *e, uint32_t m) {
  const char *bad = kn_reads_take(e->kk, &e->rd, m, materialize, e);
  if (bad) enc_fail(e, "%s", bad);
}

/* Program entry s at the current tile (as jit/views.c's): a leaf read kept for its reader
 * (leaf_at), or a member's instruction on its operands' values. */
static void step(Enc *e, KnStep s) {
  const KnKernel *kk = e->kk;
  uint32_t u = s.v;
  int m = kn_member(kk, u), r, x;
  if (KN_LEAF(kk, u)) { /* room: kk->most */
    e->reads[kn_reads_push(&e->rd, s)] = -1;
    return;
  }
  e->ctx = s.ctx;
  const KnIns *in = &kk->ins[m];
  bool rows = e->c->mode == VMM_ROWS;
  take_reads(e, (uint32_t)m);
  switch (in->op) {
  case KO_PRODUCT: r = e->mm; break;
  case KO_VIEW: r = view_here(e, u); break;
  /* rows: one instruction reading the per-row values once (u); cols: per-column tiles */
  case KO_SOFTMAX: /* exp(x - max), or the row the sum pass kept, times 1 / sum */
    if (m == e->stash_member) {
      x = enc_emit(e, VM_LD_F32, e->stash_reg, (int)e->stash_buf, 1);
      r = enc_emit(e, VM_MULU, x, e->n2[m], 0);
    } else if (rows) {
      r = enc_emit(e, VM_SOFTMAXU, operand(e, in, 0), e->n1[m], e->n2[m]);
    } else {
      r = enc_emit(e, VM_MUL, enc_emit(e, VM_SUBEXP, operand(e, in, 0), e->n1[m], 0), e->n2[m], 0);
    }
    break;
  case KO_LOG_SOFTMAX: r = enc_emit(e, rows ? VM_SUBU : VM_SUB, operand(e, in, 0), e->n2[m], 0); break;
  case KO_LAYERNORM: /* ((x - mean)·rstd)·gamma + beta */
    x = operand(e, in, 0);
    if (rows) {
      int gamma = operand(e, in, 1), beta = operand(e, in, 2);
      r = enc_emit_p(e, VM_LNORMU, x, e->n1[m], 0, e->n2[m], gamma, beta);
    } else {
      x = enc_emit(e, VM_SUBMUL, x, e->n1[m], e->n2[m]);
      r = operand(e, in, 1);
      r = enc_emit(e, VM_MULADD, x, r, operand(e, in, 2));
    }
    break;
  case KO_RMSNORM: /* (x·rstd)·gamma */
    x = operand(e, in, 0);
    if (rows) r = enc_emit(e, VM_RMSNORMU, x, e->n2[m], operand(e, in, 1));
    else r = enc_emit(e, VM_MUL, enc_emit(e, VM_MUL, x, e->n2[m], 0), operand(e, in, 1), 0);
    break;
  default: r = elementwise(e, in);
  }
  e->memo[m] = r;
  e->ctx = 0;
}

/* The value of value number u at the current tile: the current program's entries run up
 * to u's (jit/views.c cg_eval). */
int enc_eval(Enc *e, uint32_t u) {
  const KnKernel *kk = e->kk;
  int m = kn_member(kk, u);
  if (m >= 0 && !KN_LEAF(kk, u) && e->memo[m] >= 0) return e->memo[m];
  while (e->prog && e->at < e->prog->n) {
    KnStep s = e->prog->step[e->at++];
    step(e, s);
    if (s.v != u) continue;
    if (m >= 0 && !KN_LEAF(kk, u)) return e->memo[m];
    return leaf_at(e, kn_reads_pop(&e->rd)); /* read at the top */
  }
  enc_fail(e, "%s", "internal: a value its program does not evaluate");
  return enc_constf(e, 0);
}
