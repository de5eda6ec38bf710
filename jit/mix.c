/* jit/mix.c — mix kernels off the packed path: a 2-D b read in place (blocks of MIX_ROWS
 * rows and W columns, K fused multiply-adds per accumulator, the epilogue on each), few
 * rows with b streamed, and the general matmul (views, batches, transposes: one output
 * row at a time, each operand read at its position). */
#include <llvm-c/Core.h>
#include <string.h>

#include "cg.h"

enum { MIX_ROWS = 4 }; /* rows of a register block: each b vector feeds this many FMAs */

typedef struct Mm {
  LLVMValueRef row, N, K;
  int rows;              /* rows in this block: MIX_ROWS or 1 */
  uint32_t a, b;
  const KnDim *dom;
  int r;
} Mm;

/* One k step of the block: b[k, j..] loaded once, one FMA per row into acc[r]. */
static void mix_step(Cg *c, Mm *mm, LLVMValueRef pa, LLVMValueRef pb, const LLVMValueRef *abase,
                     LLVMValueRef k, LLVMValueRef *acc) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  LLVMValueRef bv = cg_load_vec(c, pb, LLVMBuildAdd(B, LLVMBuildMul(B, k, mm->N, ""), c->j, ""));
  for (int r = 0; r < mm->rows; r++) {
    LLVMValueRef aat = LLVMBuildGEP2(B, c->f32, pa, (LLVMValueRef[]){LLVMBuildAdd(B, abase[r], k, "")}, 1, "");
    LLVMValueRef av = cg_vsplat(c, LLVMBuildLoad2(B, c->f32, aat, ""), "");
    acc[r] = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){av, bv, acc[r]}, 3);
  }
}

/* For the block's rows at this column: the K products summed in two interleaved partial
 * sums per row (even and odd k: half the rounding error of one long chain, and twice the
 * independent FMA chains), b loaded once per k for all rows; then the epilogue and the
 * stores row by row. */
static LLVMValueRef mix_body(Cg *c, void *arg, LLVMValueRef acc) {
  Mm *mm = arg;
  LLVMBuilderRef B = c->B;
  int R = mm->rows;
  LLVMValueRef pa = cg_buf(c, (uint32_t)kn_input(c->low, mm->a)), pb = cg_buf(c, (uint32_t)kn_input(c->low, mm->b));
  LLVMValueRef abase[MIX_ROWS];
  for (int r = 0; r < R; r++)
    abase[r] = LLVMBuildMul(B, LLVMBuildAdd(B, mm->row, cg_ci64(c, r), ""), mm->K, "");
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "k"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.body"),
                    odd = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.odd"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef k = LLVMBuildPhi(B, c->i64, "k"), s0[MIX_ROWS], s1[MIX_ROWS], n0[MIX_ROWS], n1[MIX_ROWS];
  for (int r = 0; r < R; r++) s0[r] = LLVMBuildPhi(B, c->vf, "even"), s1[r] = LLVMBuildPhi(B, c->vf, "odd");
  LLVMValueRef k2 = LLVMBuildAdd(B, k, cg_ci64(c, 2), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, k2, mm->K, ""), body, odd);
  LLVMPositionBuilderAtEnd(B, body);
  memcpy(n0, s0, sizeof n0), memcpy(n1, s1, sizeof n1);
  mix_step(c, mm, pa, pb, abase, k, n0);
  mix_step(c, mm, pa, pb, abase, LLVMBuildAdd(B, k, cg_ci64(c, 1), ""), n1);
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(k, (LLVMValueRef[]){cg_ci64(c, 0), k2}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int r = 0; r < R; r++) {
    LLVMAddIncoming(s0[r], (LLVMValueRef[]){cg_splatf(c, 0), n0[r]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
    LLVMAddIncoming(s1[r], (LLVMValueRef[]){cg_splatf(c, 0), n1[r]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  }
  /* an odd K leaves one step, into the even sums */
  LLVMPositionBuilderAtEnd(B, odd);
  LLVMValueRef t0[MIX_ROWS];
  memcpy(t0, s0, sizeof t0);
  LLVMBasicBlockRef last = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.last");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k, mm->K, ""), last, done);
  LLVMPositionBuilderAtEnd(B, last);
  mix_step(c, mm, pa, pb, abase, k, t0);
  LLVMBasicBlockRef last_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  LLVMValueRef e[MIX_ROWS];
  for (int r = 0; r < R; r++) { /* phis first: a block starts with its phis */
    e[r] = LLVMBuildPhi(B, c->vf, "");
    LLVMAddIncoming(e[r], (LLVMValueRef[]){s0[r], t0[r]}, (LLVMBasicBlockRef[]){odd, last_end}, 2);
  }
  for (int r = 0; r < R; r++) {
    LLVMValueRef row = LLVMBuildAdd(B, mm->row, cg_ci64(c, r), "");
    LLVMValueRef sum = LLVMBuildFAdd(B, e[r], s1[r], "");
    cg_forget(c);
    cg_row_bases(c, row, mm->dom, mm->r);
    c->mm = sum;
    Store st = {row, mm->N};
    cg_store_body(c, &st, acc);
  }
  cg_forget(c);
  return acc;
}

/* Rows [row, row + rows) of a mix kernel. */
static void mix_rows(Cg *c, LLVMValueRef row, int rows, const KnDim *dom, int r, LLVMValueRef L) {
  const KnIns *in = &c->low->ins[c->mm_member];
  Mm mm = {.row = row, .N = L, .rows = rows, .a = in->arg[0], .b = in->arg[1], .dom = dom, .r = r};
  mm.K = cg_dimval(c, in->kdim); /* a read in place: not transposed */
  cg_columns(c, L, NULL, mix_body, &mm);
}

/* A counted loop from `from` while iv + step <= end (step 1: iv < end); returns the exit
 * value of iv. body(c, iv, arg) emits one iteration. */
LLVMValueRef cg_counted(Cg *c, LLVMValueRef from, LLVMValueRef end, int step,
                            void (*body)(Cg *, LLVMValueRef, void *), void *arg) {
  LLVMBuilderRef B = c->B;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop"),
                    bb = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef iv = LLVMBuildPhi(B, c->i64, "iv");
  LLVMValueRef last = LLVMBuildAdd(B, iv, cg_ci64(c, step), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, last, end, ""), bb, done);
  LLVMPositionBuilderAtEnd(B, bb);
  body(c, iv, arg);
  LLVMBasicBlockRef bend = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(iv, (LLVMValueRef[]){from, last}, (LLVMBasicBlockRef[]){pre, bend}, 2);
  LLVMPositionBuilderAtEnd(B, done);
  return iv;
}

typedef struct MixLoop {
  const KnDim *dom;
  int r, rows;
  LLVMValueRef L;
} MixLoop;

static void mix_iter(Cg *c, LLVMValueRef row, void *arg) {
  MixLoop *ml = arg;
  mix_rows(c, row, ml->rows, ml->dom, ml->r, ml->L);
}

/* ---- mix: few rows, the weights streamed ---------------------------------------------------
 *
 * A call with few rows (M <= SMALL_M: GEMV-like, bound by reading b) must not walk b down
 * its columns (a page per k) once per row: it streams b row by row instead. The block's
 * output rows, which the output pass overwrites anyway, hold the running sums (they stay
 * in L2): for each group of 4 k, every column vector of every row gets 4 fused
 * multiply-adds from 4 rows of b read in order; then the epilogue pass reads the sums. */

enum { SMALL_M = 16, SM_ROWS = 4, SM_K = 4 };

typedef struct Sm {
  LLVMValueRef row, N, K, acc;     /* acc: the first full-shaped output (the sums' rows) */
  LLVMValueRef k0;                 /* the current group's first k */
  int rows;
  uint32_t a, b;
  LLVMValueRef av[SM_ROWS][SM_K];  /* a[row + r, k + kk] as splats */
  int nk;                          /* k in this group */
} Sm;

static LLVMValueRef sm_zero(Cg *c, void *arg, LLVMValueRef acc) {
  Sm *sm = arg;
  for (int r = 0; r < sm->rows; r++) {
    LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->row, cg_ci64(c, r), ""), sm->N, ""), c->j, "");
    cg_store_vec(c, sm->acc, off, cg_splatf(c, 0));
  }
  return acc;
}

static LLVMValueRef sm_step(Cg *c, void *arg, LLVMValueRef acc) {
  Sm *sm = arg;
  LLVMTypeRef t = c->vf;
  LLVMValueRef pb = cg_buf(c, (uint32_t)kn_input(c->low, sm->b)), bv[SM_K];
  for (int kk = 0; kk < sm->nk; kk++)
    bv[kk] = cg_load_vec(c, pb, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->k0, cg_ci64(c, kk), ""), sm->N, ""), c->j, ""));
  for (int r = 0; r < sm->rows; r++) {
    LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->row, cg_ci64(c, r), ""), sm->N, ""), c->j, "");
    LLVMValueRef s = cg_load_vec(c, sm->acc, off);
    for (int kk = 0; kk < sm->nk; kk++) s = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){sm->av[r][kk], bv[kk], s}, 3);
    cg_store_vec(c, sm->acc, off, s);
  }
  return acc;
}

/* One group of nk values of k starting at k: a's elements once, then the columns. */
static void sm_group(Cg *c, LLVMValueRef k, void *arg) {
  Sm *sm = arg;
  LLVMValueRef pa = cg_buf(c, (uint32_t)kn_input(c->low, sm->a));
  sm->k0 = k;
  for (int r = 0; r < sm->rows; r++)
    for (int kk = 0; kk < sm->nk; kk++) {
      LLVMValueRef at = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->row, cg_ci64(c, r), ""), sm->K, ""),
                                     LLVMBuildAdd(c->B, k, cg_ci64(c, kk), ""), "");
      sm->av[r][kk] = cg_vsplat(c, LLVMBuildLoad2(c->B, c->f32, LLVMBuildGEP2(c->B, c->f32, pa, &at, 1, ""), ""), "");
    }
  cg_columns(c, sm->N, NULL, sm_step, sm);
}

static LLVMValueRef sm_out(Cg *c, void *arg, LLVMValueRef acc) {
  Sm *sm = arg;
  for (int r = 0; r < sm->rows; r++) {
    LLVMValueRef row = LLVMBuildAdd(c->B, sm->row, cg_ci64(c, r), "");
    cg_forget(c);
    cg_row_bases(c, row, c->dom, c->r);
    c->mm = cg_load_vec(c, sm->acc, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, row, sm->N, ""), c->j, ""));
    Store st = {row, sm->N};
    cg_store_body(c, &st, NULL);
  }
  cg_forget(c);
  return acc;
}

static void sm_block(Cg *c, LLVMValueRef row, void *arg) {
  Sm *sm = arg;
  sm->row = row;
  cg_columns(c, sm->N, NULL, sm_zero, sm);
  sm->nk = SM_K;
  LLVMValueRef k = cg_counted(c, cg_ci64(c, 0), sm->K, SM_K, sm_group, sm);
  sm->nk = 1;
  cg_counted(c, k, sm->K, 1, sm_group, sm);
  cg_columns(c, sm->N, NULL, sm_out, sm);
}

/* ---- mix: the general matmul --------------------------------------------------------------
 *
 * Operands that are views, batched (with broadcasting) or transposed: one output row at a
 * time, each operand read at its position through cg_view_at (a's element as a splat, b's W
 * columns as a vector load or a gather), K products in four interleaved partial sums. A
 * correct loop for every layout; the GEMM issue makes these fast. */

typedef struct Gm {
  uint32_t a, b;
  bool ta, tb;
  bool dot;       /* dot form: lanes along k (b's columns would be gathers, its k is contiguous) */
  LLVMValueRef K, L, row;
} Gm;

/* Operand x's position for output row idx (batch dims right-aligned with the domain's,
 * broadcast ones at 0) and its last two indices (i0, i1). */
void cg_gm_pos(Cg *c, uint32_t x, Ix i0, Ix i1, Ix *P) {
  const KnVal *n = &c->low->val[x];
  KnLayout lay;
  kn_layout(c->low, x, 0, &lay);
  for (int t = 0; t + 2 < n->rank; t++)
    P[t] = lay.axis[t] < 0 ? cg_ix_scalar(cg_ci64(c, 0)) : cg_ix_scalar(c->idx[lay.axis[t]]);
  if (n->rank == 1) { /* a vector a: [K] @ b, its one dim is k */
    P[0] = i1;
    return;
  }
  P[n->rank - 2] = i0, P[n->rank - 1] = i1;
}

static void place_k(Cg *c, LLVMValueRef k) { c->kk = k; }

static LLVMValueRef gm_step(Cg *c, void *arg, LLVMValueRef acc) {
  Gm *gm = arg;
  Ix Pa[DVM_MAX_RANK], Pb[DVM_MAX_RANK], m = cg_ix_scalar(cg_row_index(c)), k = cg_ix_scalar(c->kk),
     col = {cg_ci64(c, 0), 1, NULL, 0};
  cg_gm_pos(c, gm->a, gm->ta ? k : m, gm->ta ? m : k, Pa);
  cg_gm_pos(c, gm->b, gm->tb ? col : k, gm->tb ? k : col, Pb);
  LLVMTypeRef t = c->vf;
  return cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){cg_view_at(c, gm->a, Pa), cg_view_at(c, gm->b, Pb), acc}, 3);
}

static LLVMValueRef gm_body(Cg *c, void *arg, LLVMValueRef acc) {
  Gm *gm = arg;
  LLVMValueRef s[MAXU] = {cg_splatf(c, 0), cg_splatf(c, 0), cg_splatf(c, 0), cg_splatf(c, 0)};
  LLVMValueRef k = cg_pos_loop(c, cg_ci64(c, 0), gm->K, MAXU, 1, place_k, s, gm_step, gm);
  s[0] = LLVMBuildFAdd(c->B, LLVMBuildFAdd(c->B, s[0], s[1], ""), LLVMBuildFAdd(c->B, s[2], s[3], ""), "");
  cg_pos_loop(c, k, gm->K, 1, 1, place_k, s, gm_step, gm);
  cg_forget(c);
  c->mm = s[0];
  Store st = {gm->row, gm->L};
  return cg_store_body(c, &st, acc);
}

/* Dot form (q @ kᵀ and other b read across its rows): each of the W output columns of the
 * block is a dot product with lanes along k, both operands read contiguously; W
 * accumulators, then each one's horizontal sum is one lane of the block's value. Lanes
 * beyond k's end, and columns beyond the row's end, are masked (never read). */
static void dot_chunk(Cg *c, Gm *gm, LLVMValueRef jcol, LLVMValueRef colmask, LLVMValueRef *acc) {
  LLVMTypeRef t = c->vf;
  Ix Pa[DVM_MAX_RANK], Pb[DVM_MAX_RANK], m = cg_ix_scalar(cg_row_index(c)), k = {cg_ci64(c, 0), 1, NULL, 0};
  LLVMValueRef kmask = c->mask;
  bool guarded = c->guarded;
  cg_gm_pos(c, gm->a, gm->ta ? k : m, gm->ta ? m : k, Pa);
  LLVMValueRef av = cg_view_at(c, gm->a, Pa);
  for (int n = 0; n < c->W; n++) {
    Ix col = cg_ix_scalar(LLVMBuildAdd(c->B, jcol, cg_ci64(c, n), ""));
    cg_gm_pos(c, gm->b, gm->tb ? col : k, gm->tb ? k : col, Pb);
    if (colmask) { /* column n of a tail block may lie past the row */
      LLVMValueRef on = cg_vsplat(c, LLVMBuildExtractElement(c->B, colmask, LLVMConstInt(c->i32, (unsigned)n, 0), ""), "");
      c->mask = kmask ? LLVMBuildAnd(c->B, kmask, on, "") : on, c->guarded = true;
    }
    acc[n] = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){av, cg_view_at(c, gm->b, Pb), acc[n]}, 3);
    c->mask = kmask, c->guarded = guarded;
  }
}

static LLVMValueRef dot_body(Cg *c, void *arg, LLVMValueRef unused) {
  Gm *gm = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef jcol = c->j, colmask = c->mask, acc[64], phi[64];
  LLVMValueRef W = cg_ci64(c, c->W);
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot.body"),
                    tail = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot.tail"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef kk = LLVMBuildPhi(B, c->i64, "k");
  for (int n = 0; n < c->W; n++) phi[n] = LLVMBuildPhi(B, c->vf, "dot.acc");
  LLVMValueRef k1 = LLVMBuildAdd(B, kk, W, "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, k1, gm->K, ""), body, tail);
  LLVMPositionBuilderAtEnd(B, body); /* whole vectors of k */
  for (int n = 0; n < c->W; n++) acc[n] = phi[n];
  c->j = kk, c->mask = NULL;
  dot_chunk(c, gm, jcol, colmask, acc);
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(kk, (LLVMValueRef[]){cg_ci64(c, 0), k1}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int n = 0; n < c->W; n++)
    LLVMAddIncoming(phi[n], (LLVMValueRef[]){cg_splatf(c, 0), acc[n]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  LLVMPositionBuilderAtEnd(B, tail); /* the rest of k, masked (maybe none) */
  for (int n = 0; n < c->W; n++) acc[n] = phi[n];
  c->j = kk, c->mask = cg_tail_mask(c, LLVMBuildSub(B, gm->K, kk, ""));
  dot_chunk(c, gm, jcol, colmask, acc);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  LLVMValueRef sum = cg_splatf(c, 0);
  for (int n = 0; n < c->W; n++)
    sum = LLVMBuildInsertElement(B, sum, cg_lanes_sum(c, acc[n]), LLVMConstInt(c->i32, (unsigned)n, 0), "");
  c->j = jcol, c->mask = colmask;
  cg_forget(c);
  c->mm = sum;
  Store st = {gm->row, gm->L};
  return cg_store_body(c, &st, unused);
}

static void gm_row(Cg *c, LLVMValueRef row, void *arg) {
  Gm *gm = arg;
  gm->row = row;
  cg_row_bases(c, row, c->dom, c->r);
  cg_columns(c, gm->L, NULL, gm->dot ? dot_body : gm_body, gm);
}

/* Would reading b with its columns along the lanes gather, and reading both operands
 * along k not? */
static bool want_dot(Cg *c, Gm *gm) {
  return cg_gathers_along(c, gm->b, gm->tb, 1) && !cg_gathers_along(c, gm->b, gm->tb, 0) && !cg_gathers_along(c, gm->a, gm->ta, 1);
}

/* A mix kernel off the packed path: the general matmul (views, batches, transposes), or a
 * 2-D b read in place, streamed for few rows. */
void cg_mix_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end) {
  const KnKernel *kk = c->low;
  const KnIns *prod = &kk->ins[c->mm_member];
  uint32_t ni = kk->nin, nout = kk->nout;
  const KnDim *dom = c->dom;
  int r = c->r;
  LLVMValueRef L = c->L;
  if (kk->loop == KL_GENERAL) {
    Gm gm = {.a = prod->arg[0], .b = prod->arg[1], .L = L, .ta = prod->ta, .tb = prod->tb};
    gm.K = cg_dimval(c, prod->kdim);
    gm.dot = want_dot(c, &gm);
    cg_counted(c, begin, end, 1, gm_row, &gm);
    return;
  }
  /* few rows: b streamed (blocks of SM_ROWS rows, then single rows), into the first
     full-shaped output's rows; otherwise blocks of MIX_ROWS rows, then single rows */
  int ao = kk->full_out; /* the sums' rows */
  uint32_t acc_out = ao < 0 ? nout : (uint32_t)ao;
  LLVMBasicBlockRef small = LLVMAppendBasicBlockInContext(c->C, c->fn, "small_m"),
                    big = LLVMAppendBasicBlockInContext(c->C, c->fn, "big_m"),
                    fin = LLVMAppendBasicBlockInContext(c->C, c->fn, "mix.done");
  LLVMValueRef few = LLVMBuildICmp(c->B, LLVMIntSLE, LLVMBuildSub(c->B, end, begin, ""), cg_ci64(c, SMALL_M), "");
  LLVMBuildCondBr(c->B, acc_out < nout ? few : LLVMConstInt(c->i1, 0, 0), small, big);
  LLVMPositionBuilderAtEnd(c->B, small);
  if (acc_out < nout) {
    Sm sm = {.N = L, .a = prod->arg[0], .b = prod->arg[1], .rows = SM_ROWS, .acc = cg_buf(c, ni + acc_out)};
    sm.K = cg_dimval(c, prod->kdim);
    LLVMValueRef at = cg_counted(c, begin, end, SM_ROWS, sm_block, &sm);
    /* the 1..SM_ROWS-1 rows left: one block of exactly that many (b read once more) */
    LLVMValueRef left = LLVMBuildSub(c->B, end, at, "");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->C, c->fn, "small_m.done");
    LLVMValueRef sw = LLVMBuildSwitch(c->B, left, done, SM_ROWS - 1);
    for (int rows = 1; rows < SM_ROWS; rows++) {
      LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->C, c->fn, "small_m.rest");
      LLVMAddCase(sw, cg_ci64(c, rows), bb);
      LLVMPositionBuilderAtEnd(c->B, bb);
      sm.rows = rows;
      sm_block(c, at, &sm);
      LLVMBuildBr(c->B, done);
    }
    LLVMPositionBuilderAtEnd(c->B, done);
  }
  LLVMBuildBr(c->B, fin);
  LLVMPositionBuilderAtEnd(c->B, big);
  MixLoop ml = {dom, r, MIX_ROWS, L};
  LLVMValueRef at = cg_counted(c, begin, end, MIX_ROWS, mix_iter, &ml);
  ml.rows = 1;
  cg_counted(c, at, end, 1, mix_iter, &ml);
  LLVMBuildBr(c->B, fin);
  LLVMPositionBuilderAtEnd(c->B, fin);
}
