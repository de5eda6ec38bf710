/* jit/views.c — where the emitter's values come from: the bases of the kernel's operands
 * at the current outer index, views as index maps down to an input's element offset, and
 * the lowered programs' entries (KnProg) that every kernel shape's loop bodies run in
 * order (cg_eval), each member's instruction on its operands' values.
 *
 * A view member is read at a position in its own index space, mapped through the chain of
 * views to a kernel input's element offset (or to a constant, or to arange's index). An
 * index (Ix) is s + k·(j + lane) with s a scalar and k known when the kernel is emitted
 * (the common case: 0 off the last axis, 1 along it), or any vector v of W indices (after
 * a division or a product by a runtime stride); offsets with k = 1 are vector loads,
 * k = 0 splat loads, others gathers. */
#include <llvm-c/Core.h>
#include <string.h>

#include "cg.h"

enum { AL_MAX = 1 << 20 };

Ix cg_ix_scalar(LLVMValueRef s) { return (Ix){s, 0, NULL, 0}; }

/* The power of two known to divide x: a constant's own, else 1. */
static int64_t pow2_of(LLVMValueRef x) {
  if (!LLVMIsConstant(x)) return 1;
  int64_t v = LLVMConstIntGetSExtValue(x);
  return v == 0 ? AL_MAX : (v & -v) > AL_MAX ? AL_MAX : (v & -v);
}

static int64_t ix_al(Ix a) {
  int64_t p = pow2_of(a.s);
  return a.al > p ? a.al : p;
}

static LLVMValueRef ix_vec(Cg *c, Ix a) {
  if (a.v) return a.v;
  LLVMValueRef v = cg_vsplat(c, a.s, "");
  if (!a.k) return v;
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = cg_ci64(c, i);
  LLVMValueRef col = LLVMBuildAdd(c->B, cg_vsplat(c, c->j, ""), LLVMConstVector(lanes, (unsigned)c->W), "");
  return LLVMBuildAdd(c->B, v, LLVMBuildMul(c->B, col, cg_vsplat(c, cg_ci64(c, a.k), ""), ""), "");
}

static Ix ix_add(Cg *c, Ix a, Ix b) {
  if (!a.v && !b.v) {
    int64_t x = ix_al(a), y = ix_al(b);
    return (Ix){LLVMBuildAdd(c->B, a.s, b.s, ""), a.k + b.k, NULL, x < y ? x : y};
  }
  return (Ix){cg_ci64(c, 0), 0, LLVMBuildAdd(c->B, ix_vec(c, a), ix_vec(c, b), ""), 0};
}

/* a · m, m_al a power of two known to divide m. */
static Ix ix_mul(Cg *c, Ix a, LLVMValueRef m, int64_t m_al) {
  if (!a.v && (!a.k || LLVMIsConstant(m))) {
    int64_t al = ix_al(a) * (m_al > pow2_of(m) ? m_al : pow2_of(m));
    return (Ix){LLVMBuildMul(c->B, a.s, m, ""), a.k ? a.k * LLVMConstIntGetSExtValue(m) : 0, NULL,
                al > AL_MAX ? AL_MAX : al};
  }
  return (Ix){cg_ci64(c, 0), 0, LLVMBuildMul(c->B, ix_vec(c, a), cg_vsplat(c, m, ""), ""), 0};
}

/* a / m and a % m (non-negative indices). Lanes along a (k = 1) whose block of W starts at
 * a multiple of W never cross a multiple of m when W divides m: then the quotient is a
 * scalar and the remainder keeps the lanes (the column j is always a multiple of W). */
static void ix_divmod(Cg *c, Ix a, LLVMValueRef m, Ix *q, Ix *r) {
  if (!LLVMIsConstant(m) || !LLVMConstIntGetSExtValue(m)) { /* a dim of 0: divide by 1 */
    /* A view with a zero-sized axis has no elements to read (its lanes are masked, or the
     * extent is empty), but its index is still computed: dividing by 0 would trap. */
    LLVMValueRef z = LLVMBuildICmp(c->B, LLVMIntEQ, m, cg_ci64(c, 0), "");
    m = LLVMBuildSelect(c->B, z, cg_ci64(c, 1), m, "");
  }
  if (!a.v && !a.k) {
    *q = cg_ix_scalar(LLVMBuildUDiv(c->B, a.s, m, ""));
    *r = cg_ix_scalar(LLVMBuildURem(c->B, a.s, m, ""));
    return;
  }
  int64_t mc = LLVMIsConstant(m) ? LLVMConstIntGetSExtValue(m) : 0;
  if (!a.v && mc == 1) {
    *q = a, *r = cg_ix_scalar(cg_ci64(c, 0));
    return;
  }
  if (!a.v && a.k == 1 && mc > 0 && mc % c->W == 0 && ix_al(a) % c->W == 0) {
    LLVMValueRef base = LLVMBuildAdd(c->B, a.s, c->j, "");
    *q = cg_ix_scalar(LLVMBuildUDiv(c->B, base, m, ""));
    *r = (Ix){LLVMBuildSub(c->B, LLVMBuildURem(c->B, base, m, ""), c->j, ""), 1, NULL, c->W};
    return;
  }
  LLVMValueRef v = ix_vec(c, a), mv = cg_vsplat(c, m, "");
  *q = (Ix){cg_ci64(c, 0), 0, LLVMBuildUDiv(c->B, v, mv, ""), 0};
  *r = (Ix){cg_ci64(c, 0), 0, LLVMBuildURem(c->B, v, mv, ""), 0};
}

/* Row-major linear index of position P in value u's shape. */
static Ix linearize(Cg *c, uint32_t u, const Ix *P) {
  const KnVal *n = &c->low->val[u];
  const KnDim *sh = n->dim;
  Ix l = cg_ix_scalar(cg_ci64(c, 0));
  LLVMValueRef stride = cg_ci64(c, 1);
  int64_t stride_al = 1; /* the constant dims' powers of two divide every later stride */
  for (int t = n->rank - 1; t >= 0; t--) {
    l = ix_add(c, l, ix_mul(c, P[t], stride, stride_al));
    LLVMValueRef d = cg_dimval(c, sh[t]);
    stride = LLVMBuildMul(c->B, stride, d, "");
    stride_al = stride_al * pow2_of(d) > AL_MAX ? AL_MAX : stride_al * pow2_of(d);
  }
  return l;
}

/* Input i's W elements at element offset off. */
static LLVMValueRef load_at(Cg *c, int i, Ix off) {
  LLVMValueRef p = cg_buf(c, (uint32_t)i), x;
  DType dt = (DType)c->low->val[i].t;
  bool mask = dt == DT_BOOL;
  LLVMTypeRef et = cg_mem_type(c, dt);
  if (!off.v && off.k == 0 && !c->guarded) {
    x = cg_vsplat(c, LLVMBuildLoad2(c->B, et, LLVMBuildGEP2(c->B, et, p, &off.s, 1, ""), ""), "");
  } else if (!off.v && off.k == 1) {
    x = cg_load_elems(c, et, p, LLVMBuildAdd(c->B, off.s, c->j, ""));
  } else { /* a gather */
    c->gathers++;
    LLVMValueRef vo = ix_vec(c, off);
    LLVMValueRef ptrs = LLVMBuildGEP2(c->B, et, p, &vo, 1, "");
    LLVMTypeRef vt = LLVMVectorType(et, (unsigned)c->W);
    LLVMValueRef all = c->mask ? c->mask : cg_vsplat(c, LLVMConstInt(c->i1, 1, 0), "");
    LLVMTypeRef tys[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, LLVMConstInt(c->i32, ir_dtype_size(dt), 0), all, LLVMConstNull(vt)};
    x = cg_intrinsic(c, "llvm.masked.gather", tys, 2, args, 4);
  }
  if (kn_widened(dt)) return cg_from_mem(c, x, dt);
  return mask ? LLVMBuildICmp(c->B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "") : x;
}

/* Value u (a view, or a kernel input at the end of a chain of views) at position P. */
LLVMValueRef cg_view_at(Cg *c, uint32_t u, const Ix *P) {
  const KnKernel *kk = c->low;
  int m = kn_member(kk, u);
  const KnIns *in = m >= 0 ? &kk->ins[m] : NULL;
  const KnView *w = in ? in->view : NULL;
  Ix Q[DVM_MAX_RANK];
  if (!w) /* a literal, or a kernel input */
    return kn_const(kk, u) ? cg_lit(c, u) : load_at(c, kn_input(kk, u), linearize(c, u, P));
  int rank = kk->val[u].rank;
  switch ((KnViewKind)w->kind) {
  case KV_FULL: return cg_lit(c, u);
  case KV_ARANGE:
    if (in->t == DT_I64) return ix_vec(c, P[0]);
    if (in->t == DT_I32) return LLVMBuildTrunc(c->B, ix_vec(c, P[0]), cg_reg_type(c, DT_I32), "");
    if (kn_is_narrow((DType)in->t)) /* wrapped to the width, as the reference's arange */
      return cg_from_mem(c, LLVMBuildTrunc(c->B, ix_vec(c, P[0]), LLVMVectorType(cg_mem_type(c, (DType)in->t), (unsigned)c->W), ""), (DType)in->t);
    return LLVMBuildSIToFP(c->B, ix_vec(c, P[0]), c->vf, "");
  case KV_TRANSPOSE: { /* out axis k is in axis perm[k] */
    uint32_t x = in->arg[0];
    for (int k = 0; k < w->n; k++) Q[w->map[k]] = P[k];
    return cg_view_at(c, x, Q);
  }
  case KV_BROADCAST: { /* right-aligned; the operand's broadcast dims read index 0 */
    uint32_t x = in->arg[0];
    for (int t = 0; t < w->n; t++) Q[t] = w->map[t] < 0 ? cg_ix_scalar(cg_ci64(c, 0)) : P[w->map[t]];
    return cg_view_at(c, x, Q);
  }
  case KV_SLICE: { /* listed axes: start (clamped as Python's slice.indices) + i * step */
    uint32_t x = in->arg[0];
    for (int d = 0; d < rank; d++) Q[d] = P[d];
    for (uint32_t i = 0; i < w->n; i++) {
      int a = w->saxis[i];
      int64_t step = w->step[i];
      LLVMBuilderRef B = c->B;
      LLVMValueRef d = cg_dimval(c, w->size[i]), v = cg_dimval(c, w->start[i]);
      v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, v, cg_ci64(c, 0), ""), LLVMBuildAdd(B, v, d, ""), v, "");
      LLVMValueRef lo = cg_ci64(c, step > 0 ? 0 : -1), hi = step > 0 ? d : LLVMBuildSub(B, d, cg_ci64(c, 1), "");
      v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, v, lo, ""), lo, v, "");
      v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, v, hi, ""), hi, v, "");
      Q[a] = ix_add(c, cg_ix_scalar(v), ix_mul(c, P[a], cg_ci64(c, step), 1));
    }
    return cg_view_at(c, x, Q);
  }
  case KV_CONCAT: { /* each operand where the index falls in its block, its lanes guarded */
    int a = w->axis;
    LLVMValueRef off = cg_ci64(c, 0), res = NULL, mask0 = c->mask;
    bool guarded0 = c->guarded;
    LLVMValueRef at = ix_vec(c, P[a]);
    for (uint32_t q = 0; q < w->n; q++) {
      uint32_t x = in->arg[q];
      LLVMValueRef size = cg_dimval(c, w->csize[q]), end = LLVMBuildAdd(c->B, off, size, "");
      LLVMValueRef inside = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, at, cg_vsplat(c, off, ""), ""),
                                         LLVMBuildICmp(c->B, LLVMIntSLT, at, cg_vsplat(c, end, ""), ""), "");
      for (int d = 0; d < rank; d++) Q[d] = P[d];
      Q[a] = ix_add(c, P[a], cg_ix_scalar(LLVMBuildNeg(c->B, off, "")));
      c->mask = mask0 ? LLVMBuildAnd(c->B, mask0, inside, "") : inside, c->guarded = true;
      LLVMValueRef val = cg_view_at(c, x, Q);
      res = res ? LLVMBuildSelect(c->B, inside, val, res, "") : val;
      off = end;
    }
    c->mask = mask0, c->guarded = guarded0;
    return res;
  }
  case KV_GATHER: { /* x's axis a reads idx at the positions idx's dims take in the result */
    uint32_t x = in->arg[0], iv = in->arg[1];
    int xr = kk->val[x].rank, ir = kk->val[iv].rank;
    int a = w->axis;
    Ix Pi[DVM_MAX_RANK];
    bool lanes = c->guarded;
    for (int t = 0; t < ir; t++) Pi[t] = P[a + t], lanes |= P[a + t].v || P[a + t].k;
    LLVMValueRef at = cg_view_at(c, iv, Pi), d = cg_dimval(c, w->size[0]);
    if (!lanes) at = LLVMBuildExtractElement(c->B, at, cg_ci64(c, 0), ""); /* one index for the lanes */
    LLVMTypeRef t64 = lanes ? LLVMVectorType(c->i64, (unsigned)c->W) : c->i64;
    if (kk->val[iv].t == DT_I32) at = LLVMBuildSExt(c->B, at, t64, "");
    LLVMValueRef dd = lanes ? cg_vsplat(c, d, "") : d, zero = LLVMConstNull(t64);
    at = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, at, zero, ""), LLVMBuildAdd(c->B, at, dd, ""), at, "");
    /* in range after the runtime's check; clamped anyway, so no index can read outside x */
    LLVMValueRef hi = LLVMBuildSub(c->B, dd, lanes ? cg_vsplat(c, cg_ci64(c, 1), "") : cg_ci64(c, 1), "");
    LLVMValueRef mm[2] = {at, zero};
    at = cg_intrinsic(c, "llvm.smax", &t64, 1, mm, 2);
    mm[0] = at, mm[1] = hi;
    at = cg_intrinsic(c, "llvm.smin", &t64, 1, mm, 2);
    for (int t = 0; t < a; t++) Q[t] = P[t];
    Q[a] = lanes ? (Ix){cg_ci64(c, 0), 0, at, 0} : cg_ix_scalar(at);
    for (int t = a + 1; t < xr; t++) Q[t] = P[t + ir - 1];
    return cg_view_at(c, x, Q);
  }
  default: { /* KV_RESHAPE: the same row-major order */
    uint32_t x = in->arg[0];
    Ix l = linearize(c, u, P);
    if (kn_input(kk, x) >= 0) return load_at(c, kn_input(kk, x), l);
    for (int t = w->n - 1; t >= 0; t--) {
      if (t == 0) {
        Q[0] = l;
        break;
      }
      ix_divmod(c, l, cg_dimval(c, w->size[t]), &l, &Q[t]);
    }
    return cg_view_at(c, x, Q);
  }
  }
}

/* A view member at the current position: its dims line up with the domain like any
 * operand's (broadcast dims at index 0, the last axis along the lanes). */
static LLVMValueRef view_here(Cg *c, uint32_t u) {
  KnLayout lay;
  kn_layout(c->low, u, c->ctx, &lay);
  Ix P[DVM_MAX_RANK];
  for (int t = 0; t < lay.rank; t++) {
    int dk = lay.axis[t];
    P[t] = dk < 0 ? cg_ix_scalar(cg_ci64(c, 0)) : dk == c->r - 1 ? (Ix){cg_ci64(c, 0), 1, NULL, 0} : cg_ix_scalar(c->idx[dk]);
  }
  return cg_view_at(c, u, P);
}

/* An operand its program has not evaluated: the kernel is not emitted (jit_emit fails). */
static LLVMValueRef missing(Cg *c, uint32_t u) {
  c->broken = true;
  return LLVMGetPoison(cg_reg_type(c, (DType)c->low->val[u].t));
}

/* Leaf read q (KnProg) materialized, if it is not yet: an input loaded in the read's
 * alignment, a literal, a reduced member's per-row result rounded to its dtype. */
static LLVMValueRef leaf_at(Cg *c, uint32_t q) {
  const KnKernel *kk = c->low;
  if (q >= kk->most) return missing(c, 0); /* none (the program is broken) */
  if (c->reads[q]) return c->reads[q];
  uint32_t u = c->rd.v[q];
  int m = kn_member(kk, u), saved = c->ctx;
  DType ut = (DType)kk->val[u].t;
  LLVMValueRef r;
  c->ctx = c->rd.ctx[q];
  if (m >= 0) r = !c->red[m] ? missing(c, u) : kn_widened(ut) ? cg_round_to(c, c->red[m], ut) : c->red[m];
  else r = u >= kk->nin ? cg_lit(c, u) : cg_load_input(c, (int)u);
  c->ctx = saved;
  return c->reads[q] = r;
}

LLVMValueRef cg_operand(Cg *c, uint32_t v, uint32_t k) {
  uint32_t u = c->low->ins[kn_member(c->low, v)].arg[k];
  if (KN_LEAF(c->low, u)) return leaf_at(c, c->rd.opq[k]);
  LLVMValueRef r = c->memo[u - c->low->nin];
  return r ? r : missing(c, u);
}

static void materialize(void *c, uint32_t q) { leaf_at(c, q); }

/* Before member m's code: the reads below its own materialized, its own taken
 * (kn_reads_take). */
static void take_reads(Cg *c, uint32_t m) {
  if (kn_reads_take(c->low, &c->rd, m, materialize, c)) c->broken = true;
}

/* Program entry s at the current column: a leaf read kept for its reader (leaf_at), or a
 * member's instruction on its operands' values. */
static void step(Cg *c, KnStep s) {
  const KnKernel *kk = c->low;
  uint32_t u = s.v;
  int m = kn_member(kk, u), saved = c->ctx;
  DType ut = (DType)kk->val[u].t;
  LLVMValueRef r, x;
  if (KN_LEAF(kk, u)) { /* room: kk->most */
    c->reads[kn_reads_push(&c->rd, s)] = NULL;
    return;
  }
  c->ctx = s.ctx; /* a row kernel's member of the reduced shape */
  const KnIns *in = &kk->ins[m];
  LLVMBuilderRef B = c->B;
  take_reads(c, (uint32_t)m);
  switch (in->op) {
  case KO_PRODUCT: r = c->mm; break;
  case KO_VIEW: r = view_here(c, u); break;
  case KO_SOFTMAX: /* exp(x - max) · (1 / sum), exp(x - max) kept by the sum pass if stashed */
    x = c->stash_member == m ? cg_load_vec(c, c->stash, c->j)
                             : cg_exp_shifted(c, LLVMBuildFSub(B, cg_operand(c, u, 0), c->n1[m], ""));
    r = LLVMBuildFMul(B, x, c->n2[m], "");
    break;
  case KO_LOG_SOFTMAX: r = LLVMBuildFSub(B, cg_operand(c, u, 0), c->n2[m], ""); break; /* x - (max + log sum) */
  case KO_LAYERNORM:
    x = LLVMBuildFMul(B, LLVMBuildFSub(B, cg_operand(c, u, 0), c->n1[m], ""), c->n2[m], "");
    r = LLVMBuildFAdd(B, LLVMBuildFMul(B, x, cg_operand(c, u, 1), ""), cg_operand(c, u, 2), "");
    break;
  case KO_RMSNORM: r = LLVMBuildFMul(B, LLVMBuildFMul(B, cg_operand(c, u, 0), c->n2[m], ""), cg_operand(c, u, 1), ""); break;
  default: r = cg_emit_elementwise(c, u, in);
  }
  /* the reference rounds every op's result */
  if (kn_widened(ut) && in->op != KO_VIEW) r = cg_round_to(c, r, ut);
  c->ctx = saved;
  c->memo[m] = r;
}

/* The value of u at the current column (a vector, or a splat for per-row scalars): the
 * current program's entries run up to u's. */
LLVMValueRef cg_eval(Cg *c, uint32_t u) {
  int m = kn_member(c->low, u);
  if (m >= 0 && !KN_LEAF(c->low, u) && c->memo[m]) return c->memo[m];
  while (c->prog && c->at < c->prog->n) {
    KnStep s = c->prog->step[c->at++];
    step(c, s);
    if (s.v != u) continue;
    if (m >= 0 && !KN_LEAF(c->low, u)) return c->memo[m];
    return leaf_at(c, kn_reads_pop(&c->rd)); /* read at the top */
  }
  return missing(c, u);
}

void cg_begin(Cg *c, const KnProg *p) {
  memset(c->memo, 0, c->low->nmem * sizeof *c->memo);
  c->prog = p, c->at = 0, c->rd.n = c->rd.ready = 0;
}

void cg_forget(Cg *c) { memset(c->memo, 0, c->low->nmem * sizeof *c->memo); }

/* Element offsets of every input for row `row` (outer index decomposed by the domain). */
void cg_row_bases(Cg *c, LLVMValueRef row, const KnDim *dom, int r) {
  LLVMValueRef *idx = c->idx, rem = row;
  if (c->multi) { /* the row enumerates the kept outer axes; the reduced ones start at 0 */
    for (int d = r - 2; d >= 0; d--) {
      if (c->axes >> d & 1) {
        idx[d] = cg_ci64(c, 0);
        continue;
      }
      LLVMValueRef n = cg_dimval(c, dom[d]);
      idx[d] = LLVMBuildURem(c->B, rem, n, "");
      rem = LLVMBuildUDiv(c->B, rem, n, "");
    }
    cg_input_bases(c, idx);
    return;
  }
  for (int d = r - 2; d >= 1; d--) {
    LLVMValueRef n = cg_dimval(c, dom[d]);
    idx[d] = LLVMBuildSRem(c->B, rem, n, "");
    rem = LLVMBuildSDiv(c->B, rem, n, "");
  }
  if (r >= 2) idx[0] = rem; /* the row is below the extent: the outermost index needs no remainder */
  cg_input_bases(c, idx);
}

/* Row kernels (not multi mode): each f32 input read along the row gets the offset of the
 * same column one row on (the innermost outer index + 1; past the last row it points
 * beyond the data, which a prefetch may). The first pass prefetches it, one line per
 * vector: a row of 1024 f32 is one 4 KB page, where the hardware's stream prefetch
 * stops, and the row's own passes and stores hold the reorder window while the next
 * row's first loads wait (W3 at N = 4096 ran at ~28 GB/s where W1 streams at ~40). */
void cg_next_row_bases(Cg *c) {
  c->prefetching = false;
  if (c->multi || c->r < 2) return;
  LLVMValueRef idx[DVM_MAX_RANK];
  memcpy(idx, c->idx, sizeof idx);
  idx[c->r - 2] = LLVMBuildAdd(c->B, idx[c->r - 2], cg_ci64(c, 1), "");
  for (uint32_t i = 0; i < c->low->nin; i++) {
    uint32_t u = i; /* input i is value i */
    LLVMValueRef nb, inner;
    c->next[i] = NULL;
    if (c->low->val[u].t != DT_F32 || LLVMConstIntGetSExtValue(c->inner[2 * i]) != 1) continue;
    cg_value_base(c, u, idx, 0, &nb, &inner);
    if (LLVMIsConstant(nb) && LLVMIsConstant(c->base[2 * i]) &&
        LLVMConstIntGetSExtValue(nb) == LLVMConstIntGetSExtValue(c->base[2 * i]))
      continue; /* the same row for every row (broadcast over the outer axes) */
    c->next[i] = nb, c->prefetching = true;
  }
}
