/* jit/rows.c — vector and row kernels: the passes a row kernel makes over each row (one
 * per reduction, softmax's max and sum, layernorm's statistics in one pass, argmax), the
 * per-row results they leave as splats, the output pass and the stores; row_kernel
 * drives them over the rows of [begin, end). A vector kernel is a row kernel without
 * passes. */
#include <llvm-c/Core.h>
#include <math.h>
#include <string.h>

#include "cg.h"

LLVMValueRef cg_identity(Cg *c, Fold f, DType t) {
  if (kn_is_int(t)) {
    bool w = t == DT_I64 || t == DT_U32; /* the register's width */
    int64_t v = f == FOLD_SUM ? 0 : f == FOLD_PROD ? 1 : f == FOLD_MAX ? (w ? INT64_MIN : INT32_MIN) : (w ? INT64_MAX : INT32_MAX);
    LLVMTypeRef et = w ? c->i64 : c->i32;
    return cg_vsplat(c, LLVMConstInt(et, (unsigned long long)v, 1), "");
  }
  return cg_splatf(c, f == FOLD_SUM ? 0.0 : f == FOLD_PROD ? 1.0 : f == FOLD_MAX || f == FOLD_MAX_ORD ? -INFINITY : INFINITY);
}

/* acc ⊕ v for a fold of values of dtype t. */
LLVMValueRef cg_fold_op(Cg *c, Fold f, DType t, LLVMValueRef acc, LLVMValueRef v) {
  LLVMBuilderRef B = c->B;
  if (kn_is_int(t)) {
    LLVMTypeRef ty = LLVMTypeOf(acc);
    LLVMValueRef a[2] = {acc, v};
    switch (f) {
    case FOLD_SUM: return LLVMBuildAdd(B, acc, v, "");
    case FOLD_PROD: return LLVMBuildMul(B, acc, v, "");
    case FOLD_MAX: return cg_intrinsic(c, "llvm.smax", &ty, 1, a, 2);
    default: return cg_intrinsic(c, "llvm.smin", &ty, 1, a, 2);
    }
  }
  switch (f) {
  case FOLD_SUM: return LLVMBuildFAdd(B, acc, v, "");
  case FOLD_PROD: return LLVMBuildFMul(B, acc, v, "");
  case FOLD_MAX: return cg_vcall2(c, "llvm.maximum", acc, v);
  case FOLD_MAX_ORD: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, v, acc, ""), v, acc, "");
  default: return cg_vcall2(c, "llvm.minimum", acc, v);
  }
}

LLVMValueRef cg_pass_body(Cg *c, void *arg, LLVMValueRef acc) {
  Pass *ps = arg;
  LLVMBuilderRef B = c->B;
  cg_begin(c, ps->prog);
  LLVMValueRef x = cg_eval(c, ps->value), v;
  switch (ps->what) {
  case W_EXP_SHIFTED:
    v = cg_exp_shifted(c, LLVMBuildFSub(B, x, c->n1[ps->member], ""));
    if (c->stash_member == ps->member) cg_store_vec(c, c->stash, c->j, v);
    break;
  case W_SQ_CENTERED: v = LLVMBuildFSub(B, x, c->n1[ps->member], ""), v = LLVMBuildFMul(B, v, v, ""); break;
  case W_SQ: v = LLVMBuildFMul(B, x, x, ""); break;
  default: v = x;
  }
  if (c->mask) v = LLVMBuildSelect(B, c->mask, v, cg_identity(c, ps->fold, ps->t), "");
  return cg_fold_op(c, ps->fold, ps->t, acc, v);
}

static LLVMValueRef fold2(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b) {
  const Pass *ps = arg;
  return cg_fold_op(c, ps->fold, ps->t, a, b);
}

/* Multi mode: the reduced outer indices from q (the innermost fastest), and the inputs'
 * offsets there. */
static void place_q(Cg *c, LLVMValueRef q) {
  for (int d = c->r - 2; d >= 0; d--) {
    if (!(c->axes >> d & 1)) continue;
    LLVMValueRef nd = cg_dimval(c, c->dom[d]);
    c->idx[d] = LLVMBuildURem(c->B, q, nd, "");
    q = LLVMBuildUDiv(c->B, q, nd, "");
  }
  cg_input_bases(c, c->idx);
}

/* body once per combination of the reduced outer indices, carrying acc (may be NULL). */
static LLVMValueRef over_reduced(Cg *c, Body body, void *arg, LLVMValueRef acc) {
  LLVMValueRef R = cg_ci64(c, 1);
  for (int d = 0; d < c->r - 1; d++)
    if (c->axes >> d & 1) R = LLVMBuildMul(c->B, R, cg_dimval(c, c->dom[d]), "");
  cg_pos_loop(c, cg_ci64(c, 0), R, 1, 1, place_q, &acc, body, arg);
  return acc;
}

/* Multi mode: one row of the last axis folded into acc (its own four accumulators). */
static LLVMValueRef fold_q(Cg *c, void *arg, LLVMValueRef acc) {
  Pass *ps = arg;
  LLVMValueRef part = cg_columns_u(c, c->L, cg_identity(c, ps->fold, ps->t), cg_pass_body, fold2, ps, MAXU);
  return fold2(c, ps, acc, part);
}

/* The sum of v's lanes (llvm.vector.reduce.fadd, reassociated: halves onto halves). */
LLVMValueRef cg_lanes_sum(Cg *c, LLVMValueRef v) {
  LLVMTypeRef t = LLVMTypeOf(v);
  LLVMValueRef args[2] = {LLVMConstReal(c->f32, -0.0), v};
  LLVMValueRef s = cg_intrinsic(c, "llvm.vector.reduce.fadd", &t, 1, args, 2);
  LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
  return s;
}

/* One pass over the row folding a quantity (four accumulators); the result is a splat. */
static LLVMValueRef fold_row(Cg *c, LLVMValueRef L, Fold f, uint32_t value, int what, int member, const KnProg *prog) {
  Pass ps = {f, (DType)c->low->val[value].t, value, what, member, prog};
  LLVMValueRef acc = cg_identity(c, f, ps.t);
  if (c->multi) acc = over_reduced(c, fold_q, &ps, acc);
  else acc = cg_columns_u(c, L, acc, cg_pass_body, fold2, &ps, MAXU);
  c->prefetching = false; /* the row is in cache for the later passes */
  LLVMTypeRef t = LLVMTypeOf(acc);
  LLVMValueRef s;
  if (kn_is_int(ps.t)) {
    static const char *const name[] = {"llvm.vector.reduce.add", "llvm.vector.reduce.smax",
                                       "llvm.vector.reduce.smin", "llvm.vector.reduce.mul"};
    s = cg_intrinsic(c, name[f], &t, 1, &acc, 1);
  } else if (f == FOLD_SUM) {
    s = cg_lanes_sum(c, acc);
  } else if (f == FOLD_PROD) {
    LLVMValueRef args[2] = {LLVMConstReal(c->f32, 1.0), acc};
    s = cg_intrinsic(c, "llvm.vector.reduce.fmul", &t, 1, args, 2);
    LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
  } else if (f == FOLD_MAX_ORD) { /* no NaN in acc: maxps lanes */
    s = cg_intrinsic(c, "llvm.vector.reduce.fmax", &t, 1, &acc, 1);
    LLVMSetFastMathFlags(s, LLVMFastMathNoNaNs);
  } else {
    s = cg_intrinsic(c, f == FOLD_MAX ? "llvm.vector.reduce.fmaximum" : "llvm.vector.reduce.fminimum", &t, 1, &acc, 1);
  }
  return cg_vsplat(c, s, "");
}

/* argmax: lane-wise (value, index) pairs. Does (bv, bi) replace (av, ai)? The larger value,
 * the smaller index among equals, and a NaN over anything but an earlier NaN (the
 * reference takes the first maximum, or the first NaN). Vectors or scalars alike. */
static LLVMValueRef am_take(Cg *c, LLVMValueRef av, LLVMValueRef ai, LLVMValueRef bv, LLVMValueRef bi) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef a_nan = LLVMBuildFCmp(B, LLVMRealUNO, av, av, ""), b_nan = LLVMBuildFCmp(B, LLVMRealUNO, bv, bv, "");
  LLVMValueRef earlier = LLVMBuildICmp(B, LLVMIntSLT, bi, ai, "");
  LLVMValueRef better = LLVMBuildOr(B, LLVMBuildFCmp(B, LLVMRealOGT, bv, av, ""),
                                    LLVMBuildAnd(B, LLVMBuildFCmp(B, LLVMRealOEQ, bv, av, ""), earlier, ""), "");
  return LLVMBuildSelect(B, a_nan, LLVMBuildAnd(B, b_nan, earlier, ""), LLVMBuildOr(B, b_nan, better, ""), "");
}

LLVMValueRef cg_am_pick(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef av = LLVMBuildExtractValue(B, a, 0, ""), ai = LLVMBuildExtractValue(B, a, 1, "");
  LLVMValueRef bv = LLVMBuildExtractValue(B, b, 0, ""), bi = LLVMBuildExtractValue(B, b, 1, "");
  LLVMValueRef t = am_take(c, av, ai, bv, bi);
  LLVMValueRef r = LLVMBuildInsertValue(B, LLVMGetUndef(LLVMTypeOf(a)), LLVMBuildSelect(B, t, bv, av, ""), 0, "");
  return LLVMBuildInsertValue(B, r, LLVMBuildSelect(B, t, bi, ai, ""), 1, "");
}

static LLVMValueRef am_body(Cg *c, void *arg, LLVMValueRef acc) {
  const Pass *ps = arg;
  cg_begin(c, ps->prog);
  LLVMValueRef v = cg_eval(c, ps->value), lanes[64];
  if (c->mask) v = LLVMBuildSelect(c->B, c->mask, v, cg_splatf(c, -INFINITY), "");
  for (int i = 0; i < c->W; i++) lanes[i] = cg_ci64(c, i);
  LLVMValueRef at = LLVMBuildAdd(c->B, cg_vsplat(c, c->j, ""), LLVMConstVector(lanes, (unsigned)c->W), "");
  LLVMValueRef e = LLVMBuildInsertValue(c->B, LLVMGetUndef(LLVMTypeOf(acc)), v, 0, "");
  return cg_am_pick(c, acc, LLVMBuildInsertValue(c->B, e, at, 1, ""));
}

static LLVMValueRef am_comb(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b) {
  (void)arg;
  return cg_am_pick(c, a, b);
}

/* argmax of x over the row (the last axis; its program prog), as a splat of its i64
 * index: four lane-wise accumulators, then the lanes in order. */
static LLVMValueRef argmax_row(Cg *c, LLVMValueRef L, uint32_t x, const KnProg *prog) {
  Pass ps = {FOLD_MAX, DT_F32, x, W_ARGMAX, -1, prog};
  LLVMBuilderRef B = c->B;
  LLVMTypeRef vi = LLVMVectorType(c->i64, (unsigned)c->W), parts[2] = {c->vf, vi};
  LLVMTypeRef st = LLVMStructTypeInContext(c->C, parts, 2, 0);
  LLVMValueRef acc0 = LLVMBuildInsertValue(B, LLVMGetUndef(st), cg_splatf(c, -INFINITY), 0, "");
  acc0 = LLVMBuildInsertValue(B, acc0, LLVMConstNull(vi), 1, "");
  LLVMValueRef acc = cg_columns_u(c, L, acc0, am_body, am_comb, &ps, MAXU);
  LLVMValueRef av = LLVMBuildExtractValue(B, acc, 0, ""), ai = LLVMBuildExtractValue(B, acc, 1, "");
  LLVMValueRef bv = LLVMBuildExtractElement(B, av, cg_ci64(c, 0), ""), bi = LLVMBuildExtractElement(B, ai, cg_ci64(c, 0), "");
  for (int i = 1; i < c->W; i++) {
    LLVMValueRef v = LLVMBuildExtractElement(B, av, cg_ci64(c, i), ""), q = LLVMBuildExtractElement(B, ai, cg_ci64(c, i), "");
    LLVMValueRef t = am_take(c, bv, bi, v, q);
    bv = LLVMBuildSelect(B, t, v, bv, ""), bi = LLVMBuildSelect(B, t, q, bi, "");
  }
  return cg_vsplat(c, bi, "");
}

/* Column mode: row q of the reduced axis (its index in c->idx) folded into the lanes'
 * (value, index) pairs. */
LLVMValueRef cg_am_col_body(Cg *c, void *arg, LLVMValueRef acc) {
  const Pass *ps = arg;
  cg_begin(c, ps->prog);
  LLVMValueRef v = cg_eval(c, ps->value);
  if (c->mask) v = LLVMBuildSelect(c->B, c->mask, v, cg_splatf(c, -INFINITY), "");
  LLVMValueRef at = cg_vsplat(c, c->idx[__builtin_ctz(c->axes)], "");
  LLVMValueRef e = LLVMBuildInsertValue(c->B, LLVMGetUndef(LLVMTypeOf(acc)), v, 0, "");
  return cg_am_pick(c, acc, LLVMBuildInsertValue(c->B, e, at, 1, ""));
}

/* Member m's per-row scalars from the result of its pass i (Lf: the count folded, splat). */
void cg_finish_pass(Cg *c, uint32_t m, int i, LLVMValueRef folded, LLVMValueRef Lf) {
  LLVMBuilderRef B = c->B;
  const KnIns *in = &c->low->ins[m];
  const KnPass *ps = &in->pass[i];
  LLVMValueRef r;
  switch (ps->post) {
  case KP_MEAN: r = cg_vdiv(c, folded, Lf); break;
  case KP_RECIP: r = cg_vdiv(c, cg_splatf(c, 1), folded); break; /* one division per row, not per element */
  case KP_LOGADD: r = LLVMBuildFAdd(B, c->n1[m], cg_mvec(c, "logf", folded, NULL), ""); break;
  case KP_RSQRT:
    r = cg_vdiv(c, cg_splatf(c, 1), cg_vcall1(c, "llvm.sqrt", LLVMBuildFAdd(B, cg_vdiv(c, folded, Lf), cg_splatf(c, in->eps), "")));
    break;
  default: r = folded;
  }
  if (ps->dst == KD_N1) c->n1[m] = r;
  else if (ps->dst == KD_N2) c->n2[m] = r;
  else c->red[m] = r;
}

/* layernorm along the row in one pass (ln_stats): per lane l, the sums of d = x - s_l and
 * (by fma) of d², where the shift s_l is the row's element l (its first vector). */
typedef struct Shifted {
  uint32_t x;
  const KnProg *prog;
  LLVMValueRef s;
} Shifted;

static LLVMValueRef sh_body(Cg *c, void *arg, LLVMValueRef acc) {
  Shifted *sh = arg;
  LLVMBuilderRef B = c->B;
  cg_begin(c, sh->prog);
  LLVMValueRef d = LLVMBuildFSub(B, cg_eval(c, sh->x), sh->s, "");
  if (c->mask) d = LLVMBuildSelect(B, c->mask, d, cg_splatf(c, 0), "");
  LLVMValueRef a0 = LLVMBuildFAdd(B, LLVMBuildExtractValue(B, acc, 0, ""), d, "");
  LLVMTypeRef t = c->vf;
  LLVMValueRef a1 = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){d, d, LLVMBuildExtractValue(B, acc, 1, "")}, 3);
  return LLVMBuildInsertValue(B, LLVMBuildInsertValue(B, acc, a0, 0, ""), a1, 1, "");
}

static LLVMValueRef sh_comb(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b) {
  (void)arg;
  LLVMBuilderRef B = c->B;
  for (unsigned i = 0; i < 2; i++)
    a = LLVMBuildInsertValue(B, a, LLVMBuildFAdd(B, LLVMBuildExtractValue(B, a, i, ""), LLVMBuildExtractValue(B, b, i, ""), ""), i, "");
  return a;
}

/* layernorm member m of x along the row (row mode): its mean (n1) and 1/sqrt(var + eps)
 * (n2) from one pass instead of two (a mean, then the squared deviations from it). Lane l
 * folds n_l elements into D_l = Σ d and Q_l = Σ d²; its mean is s_l + D_l / n_l and its
 * squared deviations Q_l - D_l² / n_l, which cancels at most by a factor of about n_l
 * because s_l is one of the lane's own elements (its deviation from the lane's mean is at
 * most that of all of them together); the lanes combine as parallel variances do:
 * M2 = Σ_l (Q_l - D_l·(D_l / n_l)) + n_l·(mean_l - mean)². W3 1 thread: 15-18% faster at
 * N = 16..1024 (the row is read from L1 once less). The bytecode tier (FOLDSH, VMP_LNSHIFT)
 * does the same operations in the same order. */
static void ln_stats(Cg *c, LLVMValueRef L, uint32_t m, uint32_t x, double eps) {
  LLVMBuilderRef B = c->B;
  const KnProg *prog = &c->low->ins[m].prog[0];
  cg_forget(c);
  c->j = cg_ci64(c, 0), c->mask = cg_tail_mask(c, L);
  cg_begin(c, prog);
  Shifted sh = {x, prog, LLVMBuildSelect(B, c->mask, cg_eval(c, x), cg_splatf(c, 0), "")};
  cg_forget(c);
  c->mask = NULL;
  LLVMTypeRef parts[2] = {c->vf, c->vf};
  LLVMValueRef acc = LLVMGetUndef(LLVMStructTypeInContext(c->C, parts, 2, 0));
  acc = LLVMBuildInsertValue(B, LLVMBuildInsertValue(B, acc, cg_splatf(c, 0), 0, ""), cg_splatf(c, 0), 1, "");
  acc = cg_columns_u(c, L, acc, sh_body, sh_comb, &sh, MAXU);
  c->prefetching = false; /* the row is in cache for the output pass */
  LLVMValueRef D = LLVMBuildExtractValue(B, acc, 0, ""), Q = LLVMBuildExtractValue(B, acc, 1, "");
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = cg_ci64(c, i);
  LLVMValueRef W = cg_ci64(c, c->W), q = LLVMBuildUDiv(B, L, W, ""), r = LLVMBuildURem(B, L, W, "");
  LLVMValueRef extra = LLVMBuildICmp(B, LLVMIntSLT, LLVMConstVector(lanes, (unsigned)c->W), cg_vsplat(c, r, ""), "");
  LLVMValueRef n = LLVMBuildFAdd(B, cg_vsplat(c, LLVMBuildSIToFP(B, q, c->f32, ""), ""), LLVMBuildUIToFP(B, extra, c->vf, ""), "");
  LLVMValueRef n1 = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, n, cg_splatf(c, 1), ""), cg_splatf(c, 1), n, "");
  LLVMValueRef Lf = LLVMBuildSIToFP(B, L, c->f32, "");
  LLVMValueRef mean = LLVMBuildFDiv(B, cg_lanes_sum(c, LLVMBuildFAdd(B, D, LLVMBuildFMul(B, n, sh.s, ""), "")), Lf, "");
  LLVMValueRef dl = LLVMBuildFDiv(B, D, n1, "");
  LLVMValueRef dev = LLVMBuildFSub(B, LLVMBuildFAdd(B, sh.s, dl, ""), cg_vsplat(c, mean, ""), "");
  LLVMValueRef m2 = LLVMBuildFSub(B, Q, LLVMBuildFMul(B, D, dl, ""), "");
  m2 = LLVMBuildFAdd(B, m2, LLVMBuildFMul(B, LLVMBuildFMul(B, n, dev, ""), dev, ""), "");
  LLVMValueRef var = LLVMBuildFDiv(B, cg_lanes_sum(c, m2), Lf, "");
  c->n1[m] = cg_vsplat(c, mean, "");
  c->n2[m] = cg_vdiv(c, cg_splatf(c, 1), cg_vcall1(c, "llvm.sqrt", LLVMBuildFAdd(B, cg_vsplat(c, var, ""), cg_splatf(c, eps), "")));
}

/* The per-row scalars of every reduction and normalization, in member order. */
void cg_row_passes(Cg *c, LLVMValueRef L) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef count = L; /* elements folded per row: the reduced outer ones too in multi mode */
  for (int d = 0; c->multi && d < c->r - 1; d++)
    if (c->axes >> d & 1) count = LLVMBuildMul(B, count, cg_dimval(c, c->dom[d]), "");
  LLVMValueRef Lf = cg_vsplat(c, LLVMBuildSIToFP(B, count, c->f32, ""), "");
  for (uint32_t m = 0; m < c->low->nmem; m++) {
    const KnIns *in = &c->low->ins[m];
    uint32_t x = in->narg ? in->arg[0] : 0;
    const KnPass *ps = in->pass;
    int np = in->np;
    if (in->op == KO_LAYERNORM && !c->multi) { /* row mode (col mode: col_item) */
      ln_stats(c, L, m, x, in->eps);
      continue;
    }
    for (int i = 0; i < np; i++)
      cg_finish_pass(c, m, i,
                     ps[i].what == W_ARGMAX ? argmax_row(c, L, x, &in->prog[i])
                                            : fold_row(c, L, ps[i].f, x, ps[i].what, (int)m, &in->prog[i]),
                     Lf);
  }
}

/* ---- stores ------------------------------------------------------------------------------- */

/* Store every full-shaped output at the current column. */
LLVMValueRef cg_store_body(Cg *c, void *arg, LLVMValueRef acc) {
  Store *st = arg;
  enum { MAXOUT = 64 };
  LLVMValueRef val[MAXOUT];
  cg_begin(c, &c->low->store[0]);
  /* every value first: an output's row may be the stash another output still reads */
  for (uint32_t o = 0; o < c->low->nout && o < MAXOUT; o++) {
    uint32_t v = c->low->out[o];
    val[o] = c->low->val[v].full ? cg_eval(c, v) : NULL;
  }
  for (uint32_t o = 0; o < c->low->nout; o++) {
    uint32_t v = c->low->out[o];
    if (!c->low->val[v].full) continue;
    LLVMValueRef off;
    if (c->multi) { /* the domain's reduced outer indices vary within the row */
      LLVMValueRef base, inner;
      cg_value_base(c, v, c->idx, 0, &base, &inner);
      off = LLVMBuildAdd(c->B, base, c->j, "");
    } else {
      off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, st->row, st->L, ""), c->j, "");
    }
    cg_store_value(c, v, cg_buf(c, c->low->nin + o), off, o < MAXOUT ? val[o] : cg_eval(c, v));
  }
  return acc;
}

static LLVMValueRef store_q(Cg *c, void *arg, LLVMValueRef acc) {
  cg_columns(c, c->L, NULL, cg_store_body, arg);
  return acc;
}

/* Per-row outputs (reduced shapes): one element at index row. */
static void store_scalars(Cg *c, LLVMValueRef row) {
  cg_begin(c, &c->low->store[1]);
  for (uint32_t o = 0; o < c->low->nout; o++) {
    uint32_t v = c->low->out[o];
    if (c->low->val[v].full) continue;
    DType t = (DType)c->low->val[v].t;
    LLVMValueRef vec = cg_eval(c, v);
    if (kn_widened(t)) vec = cg_to_mem(c, vec, t);
    LLVMValueRef x = LLVMBuildExtractElement(c->B, vec, LLVMConstInt(c->i32, 0, 0), "");
    LLVMTypeRef et = cg_mem_type(c, t);
    if (t == DT_BOOL) x = LLVMBuildZExt(c->B, x, et, ""); /* bytes 0/1 */
    LLVMValueRef at = LLVMBuildGEP2(c->B, et, cg_buf(c, c->low->nin + o), &row, 1, "");
    LLVMBuildStore(c->B, x, at);
  }
  cg_forget(c);
}

/* Vector and row kernels: per row of [begin, end), the passes over the row, then the
 * output pass and the per-row results' stores. */
void cg_row_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end) {
  uint32_t nm = c->low->nmem, ni = c->low->nin;
  const KnDim *dom = c->dom;
  int r = c->r;
  LLVMValueRef L = c->L;
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->C, c->fn, "row"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "row.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "row.done");
  LLVMBuildBr(c->B, head);
  LLVMPositionBuilderAtEnd(c->B, head);
  LLVMValueRef row = LLVMBuildPhi(c->B, c->i64, "row");
  LLVMBuildCondBr(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, row, end, ""), body, done);
  LLVMPositionBuilderAtEnd(c->B, body);
  memset(c->red, 0, 3 * nm * sizeof *c->red);
  cg_row_bases(c, row, dom, r);
  cg_next_row_bases(c);
  Store st = {row, L};
  if (c->low->stash >= 0) { /* a softmax keeps its exp row in an f32 output's row */
    c->stash_member = c->low->stash;
    c->stash = LLVMBuildGEP2(c->B, c->f32, cg_buf(c, ni + c->low->stash_out), (LLVMValueRef[]){LLVMBuildMul(c->B, row, L, "")}, 1, "");
  }
  cg_row_passes(c, L);
  if (c->multi) over_reduced(c, store_q, &st, NULL);
  else cg_columns(c, L, NULL, cg_store_body, &st);
  store_scalars(c, row);
  LLVMValueRef next = LLVMBuildAdd(c->B, row, cg_ci64(c, 1), "");
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(c->B);
  LLVMBuildBr(c->B, head);
  LLVMAddIncoming(row, (LLVMValueRef[]){begin, next}, (LLVMBasicBlockRef[]){c->entry, body_end}, 2);
  LLVMPositionBuilderAtEnd(c->B, done);
}
