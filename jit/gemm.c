/* jit/gemm.c — mix kernels on the packed path: a register-blocked GEMM over b's packed
 * panels (kernel/gemm.c), a's blocks packed on the stack (with a normalization prologue
 * computed while packing), the epilogue per panel on the last k block. */
#include <llvm-c/Core.h>
#include <string.h>

#include "cg.h"

/* ---- mix: packed weights, register-blocked ---------------------------------------------
 *
 * A 2-D param weight b [K, N] is read from its packed copy (kernel/gemm.c: panels of nr
 * columns, nr floats per k, zero-padded), which the runtime makes once per model and
 * passes as the extra buffer bufs[ninputs + noutputs]. The outer range [begin, end) is
 * row blocks of mc rows times panels of nr output columns, panel-major within a row
 * block (kn_extent): at most mc rows, two threads read half of b each, so a few rows
 * (M = 1: a GEMV) stream b once at memory speed; many rows split by row blocks (a chunk
 * of the pool is then about one row block's panels), and a narrow output (one panel)
 * still splits by rows:
 *
 *   for each row block of the call's items (an mc x kc block of a stays in L2)
 *     for each group of the row block's panels in the call, their sums for the block's
 *     rows about PK_SUMS bytes (they stay in L2 across the k blocks)
 *       for each block of kc values of k (at least one block, so K = 0 still gets its epilogue)
 *         for the group's panels (the kc x nr slice of packed b stays in L2)
 *           micro-kernels of mr rows, then 4, 2, 1 rows for the rest: mr x nr sums in
 *             registers (mr·nr/W vectors), per k the nr/W vectors of b loaded once and each
 *             row's a element broadcast into nr/W fused multiply-adds; the sums start at
 *             zero on the first k block and from the output otherwise, and go back to the
 *             output, masked past column N. A packed param's next slice is prefetched by
 *             the first tiles, one cache line per k.
 *           on the last k block: the epilogue over the panel's rows and columns, reading
 *             the sums from the output (in L1) and storing every output
 *
 * The sums live in the first full-shaped f32 output (the epilogue overwrites it last). */

enum { PK_MAXR = 16, PK_MAXV = 8 };
/* Bytes of sums a group of panels keeps for its row block (in L2 across the k blocks). */
enum { PK_SUMS = 512 * 1024 };

typedef struct Pk {
  KnTile t;
  KnPack f;
  int nv;                        /* host vectors per panel: nr / W */
  int rows;                      /* rows of the micro-kernel being emitted */
  LLVMValueRef pa, pb, acc;      /* a, the packed b, the output that holds the sums */
  LLVMValueRef sa, sb;           /* packed blocks of a (mc x kc) and b (kc x nr) on the stack */
  LLVMValueRef K, N, M, P, begin, end; /* M rows, P panels; the call's items [begin, end) */
  LLVMValueRef Mg, IB, mb;       /* rows per product (M unless batched), row blocks per product,
                                    rows per block */
  LLVMValueRef pbegin, pend;      /* the current row block's panels */
  LLVMValueRef G, gbegin, gend;   /* panels per group; the current group of them */
  LLVMValueRef next;             /* packed param: the slice of b the next panel reads */
  LLVMValueRef ic, mend;         /* the row block [ic, mend) */
  LLVMValueRef pc, kc, first, last; /* the k block [pc, pc + kc); first / last block (i1) */
  LLVMValueRef j0, jend, panel;  /* the panel's columns [j0, jend) and its packed rows from pc */
  LLVMValueRef colmask[PK_MAXV]; /* per vector of the panel: its columns below N */
  LLVMValueRef erow;             /* the epilogue's row */
  LLVMValueRef aoff;             /* packing a: the row's offset in the packed block */
  LLVMValueRef stats;            /* a prologue's two statistics per row of the row block */
  bool bt;                       /* b packed by reading along k and transposing (pk_pack_bt) */
} Pk;

static LLVMValueRef imin(Cg *c, LLVMValueRef x, LLVMValueRef y) {
  return LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, x, y, ""), x, y, "");
}

/* A prefetch (for reading, into every level: prefetcht0) of base[off]. */
void cg_prefetch(Cg *c, LLVMValueRef base, LLVMValueRef off) {
  LLVMValueRef p = LLVMBuildGEP2(c->B, c->f32, base, &off, 1, "");
  LLVMTypeRef pt = c->ptr;
  cg_intrinsic(c, "llvm.prefetch", &pt, 1,
            (LLVMValueRef[]){p, LLVMConstInt(c->i32, 0, 0), LLVMConstInt(c->i32, 3, 0), LLVMConstInt(c->i32, 1, 0)}, 4);
}

/* The micro-kernel: rows [row, row + pk->rows) of the current panel and k block. */
static void pk_tile(Cg *c, LLVMValueRef row, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  int R = pk->rows, V = pk->nv;
  LLVMValueRef cofs[PK_MAXR][PK_MAXV], abase[PK_MAXR], acc[PK_MAXR][PK_MAXV], phi[PK_MAXR][PK_MAXV];
  for (int r = 0; r < R; r++) {
    LLVMValueRef rr = LLVMBuildAdd(B, row, cg_ci64(c, r), "");
    abase[r] = pk->f.adirect ? LLVMBuildAdd(B, LLVMBuildMul(B, rr, pk->K, ""), pk->pc, "")
                             : LLVMBuildMul(B, LLVMBuildSub(B, rr, pk->ic, ""), cg_ci64(c, pk->t.kc), "");
    LLVMValueRef crow = LLVMBuildAdd(B, LLVMBuildMul(B, rr, pk->N, ""), pk->j0, "");
    for (int v = 0; v < V; v++) {
      cofs[r][v] = LLVMBuildAdd(B, crow, cg_ci64(c, (int64_t)v * c->W), "");
      c->mask = pk->colmask[v];
      /* in bounds either way (masked columns, rows below end): select, not a branch */
      acc[r][v] = LLVMBuildSelect(B, pk->first, cg_splatf(c, 0), cg_load_vec(c, pk->acc, cofs[r][v]), "");
    }
  }
  c->mask = NULL;
  /* the next panel's slice (pk_panel: nr / 16 cache lines per k), spread over the panel's
   * first nr / 16 tiles: tile t fetches lines [t·kc, t·kc + kc) of it, one per k (the later
   * tiles fetch them again, hits). Without it the first tile of each panel waits on b's
   * slice from L3 or memory: W5's kernels 8-9% slower at N = 1024. */
  LLVMValueRef pfoff = NULL;
  int lines = (int)(pk->t.nr / 16);
  if (pk->next && R == pk->t.mr && lines > 0) {
    LLVMValueRef t = LLVMBuildUDiv(B, LLVMBuildSub(B, row, pk->ic, ""), cg_ci64(c, R), "");
    pfoff = LLVMBuildMul(B, LLVMBuildURem(B, t, cg_ci64(c, lines), ""), cg_ci64(c, pk->t.kc * 16), "");
  }
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.k"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.k.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.k.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef k = LLVMBuildPhi(B, c->i64, "k");
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) phi[r][v] = LLVMBuildPhi(B, c->vf, "sum");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k, pk->kc, ""), body, done);
  LLVMPositionBuilderAtEnd(B, body);
  LLVMValueRef bv[PK_MAXV], next[PK_MAXR][PK_MAXV];
  LLVMValueRef brow = LLVMBuildMul(B, k, cg_ci64(c, pk->t.nr), "");
  if (pfoff) cg_prefetch(c, pk->next, LLVMBuildAdd(B, pfoff, LLVMBuildMul(B, k, cg_ci64(c, 16), ""), ""));
  for (int v = 0; v < V; v++) {
    LLVMValueRef off = LLVMBuildAdd(B, brow, cg_ci64(c, (int64_t)v * c->W), "");
    LLVMValueRef l = LLVMBuildLoad2(B, c->vf, LLVMBuildGEP2(B, c->f32, pk->panel, &off, 1, ""), "");
    LLVMSetAlignment(l, (unsigned)(4 * c->W)); /* panels start on 64 bytes, rows are whole vectors */
    bv[v] = l;
  }
  for (int r = 0; r < R; r++) {
    LLVMValueRef at = LLVMBuildAdd(B, abase[r], k, "");
    LLVMValueRef av = cg_vsplat(c, LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, c->f32, pk->pa, &at, 1, ""), ""), "");
    for (int v = 0; v < V; v++) next[r][v] = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){av, bv[v], phi[r][v]}, 3);
  }
  LLVMValueRef k1 = LLVMBuildAdd(B, k, cg_ci64(c, 1), "");
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(k, (LLVMValueRef[]){cg_ci64(c, 0), k1}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++)
      LLVMAddIncoming(phi[r][v], (LLVMValueRef[]){acc[r][v], next[r][v]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  LLVMPositionBuilderAtEnd(B, done);
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) {
      c->mask = pk->colmask[v];
      cg_store_vec(c, pk->acc, cofs[r][v], phi[r][v]);
    }
  c->mask = NULL;
}

/* The epilogue at the current column of row pk->erow: the sum from the output, every
 * output stored. */
static LLVMValueRef pk_out(Cg *c, void *arg, LLVMValueRef acc) {
  Pk *pk = arg;
  c->mm = cg_load_vec(c, pk->acc, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, pk->erow, pk->N, ""), c->j, ""));
  Store st = {pk->erow, pk->N};
  return cg_store_body(c, &st, acc);
}

static void pk_out_row(Cg *c, LLVMValueRef row, void *arg) {
  Pk *pk = arg;
  pk->erow = row;
  cg_forget(c);
  cg_row_bases(c, row, c->dom, c->r);
  cg_columns_from(c, pk->j0, pk->jend, NULL, pk_out, NULL, pk, 1);
  cg_forget(c);
}

/* The matmul's row index at the current position (0 for a vector a: one row). */
LLVMValueRef cg_row_index(Cg *c) { return c->r >= 2 ? c->idx[c->r - 2] : cg_ci64(c, 0); }

/* Would reading matmul operand x (transposed if t) with the lanes along axis ax of its
 * matrix (0: rows, 1: columns, after the transpose) gather? Probed by emitting the read
 * into a scratch block that is then deleted. */
bool cg_gathers_along(Cg *c, uint32_t x, bool t, int ax) {
  LLVMBasicBlockRef at = LLVMGetInsertBlock(c->B), probe = LLVMAppendBasicBlockInContext(c->C, c->fn, "probe");
  LLVMPositionBuilderAtEnd(c->B, probe);
  for (int d = 0; d < c->r; d++) c->idx[d] = cg_ci64(c, 0);
  c->j = cg_ci64(c, 0), c->mask = NULL;
  Ix P[DVM_MAX_RANK], zero = cg_ix_scalar(cg_ci64(c, 0)), lanes = {cg_ci64(c, 0), 1, NULL, 0};
  Ix i0 = ax ? zero : lanes, i1 = ax ? lanes : zero;
  int g0 = c->gathers;
  cg_gm_pos(c, x, t ? i1 : i0, t ? i0 : i1, P);
  cg_view_at(c, x, P);
  LLVMDeleteBasicBlock(probe);
  LLVMPositionBuilderAtEnd(c->B, at);
  return c->gathers > g0;
}

/* a's k block at row pk->arow (its outer indices in c->idx), W values of k at a time,
 * into the row's place in the packed block of a. */
static LLVMValueRef pk_pack_a_cols(Cg *c, void *arg, LLVMValueRef acc) {
  Pk *pk = arg;
  LLVMValueRef x;
  if (pk->f.prologue) { /* the normalization at column k, from the row's statistics */
    cg_begin(c, &c->low->pro);
    x = cg_eval(c, pk->f.a);
  } else {
    Ix k = {cg_ci64(c, 0), 1, NULL, 0}, m = cg_ix_scalar(cg_row_index(c)), P[DVM_MAX_RANK];
    cg_gm_pos(c, pk->f.a, pk->f.ta ? k : m, pk->f.ta ? m : k, P);
    x = cg_view_at(c, pk->f.a, P);
  }
  cg_store_vec(c, pk->sa, LLVMBuildAdd(c->B, pk->aoff, LLVMBuildSub(c->B, c->j, pk->pc, ""), ""), x);
  return acc;
}

/* Row `row` of a's k block into the packed block, k along the lanes. A prologue's
 * statistics (mean and 1/sqrt(var + eps), or the latter of the mean square) are folded
 * over the whole row, as a row kernel's passes do, on the first k block, and kept per row
 * of the row block on the stack for the later ones. */
static void pk_pack_a(Cg *c, LLVMValueRef row, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  cg_row_bases(c, row, c->dom, c->r);
  if (pk->f.prologue) {
    int m = kn_member(c->low, pk->f.a);
    LLVMValueRef at[2];
    for (int q = 0; q < 2; q++) {
      LLVMValueRef i = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildSub(B, row, pk->ic, ""), cg_ci64(c, 2), ""), cg_ci64(c, q), "");
      at[q] = LLVMBuildGEP2(B, c->f32, pk->stats, &i, 1, "");
    }
    LLVMBasicBlockRef fold = LLVMAppendBasicBlockInContext(c->C, c->fn, "prologue.stats"),
                      join = LLVMAppendBasicBlockInContext(c->C, c->fn, "prologue.join");
    LLVMBuildCondBr(B, pk->first, fold, join);
    LLVMPositionBuilderAtEnd(B, fold);
    memset(c->red, 0, 3 * c->low->nmem * sizeof *c->red);
    cg_forget(c);
    cg_row_passes(c, pk->K);
    LLVMValueRef st[2] = {c->n1[m], c->n2[m]};
    for (int q = 0; q < 2; q++)
      if (st[q]) LLVMBuildStore(B, LLVMBuildExtractElement(B, st[q], cg_ci64(c, 0), ""), at[q]);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    for (int q = 0; q < 2; q++) {
      LLVMValueRef v = st[q] ? cg_vsplat(c, LLVMBuildLoad2(B, c->f32, at[q], ""), "") : NULL;
      if (q) c->n2[m] = v;
      else c->n1[m] = v;
    }
    cg_forget(c);
  }
  pk->aoff = LLVMBuildMul(c->B, LLVMBuildSub(c->B, row, pk->ic, ""), cg_ci64(c, pk->t.kc), "");
  cg_columns_from(c, pk->pc, LLVMBuildAdd(c->B, pk->pc, pk->kc, ""), NULL, pk_pack_a_cols, NULL, pk, 1);
  memset(c->red, 0, 3 * c->low->nmem * sizeof *c->red);
}

/* Row pc + kk of b's block for the current panel: its nr columns (zero past N, where the
 * masked reads give 0) into row kk of the packed panel. */
static void pk_pack_b(Cg *c, LLVMValueRef kk, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  Ix k = cg_ix_scalar(LLVMBuildAdd(B, pk->pc, kk, "")), col = {cg_ci64(c, 0), 1, NULL, 0}, P[DVM_MAX_RANK];
  LLVMValueRef row = LLVMBuildMul(B, kk, cg_ci64(c, pk->t.nr), "");
  for (int v = 0; v < pk->nv; v++) {
    c->j = LLVMBuildAdd(B, pk->j0, cg_ci64(c, (int64_t)v * c->W), "");
    c->mask = pk->colmask[v];
    cg_gm_pos(c, pk->f.b, pk->f.tb ? col : k, pk->f.tb ? k : col, P);
    LLVMValueRef x = cg_view_at(c, pk->f.b, P);
    c->mask = NULL;
    LLVMValueRef off = LLVMBuildAdd(B, row, cg_ci64(c, (int64_t)v * c->W), "");
    LLVMSetAlignment(LLVMBuildStore(B, x, LLVMBuildGEP2(B, c->f32, pk->sb, &off, 1, "")), (unsigned)(4 * c->W));
  }
}

/* W x W floats transposed in registers: log2(W) rounds of the perfect shuffle (row i and
 * row i + W/2 interleaved into rows 2i and 2i + 1) transpose a square of power-of-two
 * side; LLVM lowers each two-source shuffle to one permute. */
static void transpose_sq(Cg *c, LLVMValueRef *v) {
  int W = c->W;
  LLVMValueRef lo[64], hi[64], nv[64];
  for (int l = 0; l < W; l++) {
    lo[l] = LLVMConstInt(c->i32, (unsigned)(l % 2 ? W + l / 2 : l / 2), 0);
    hi[l] = LLVMConstInt(c->i32, (unsigned)(l % 2 ? W + W / 2 + l / 2 : W / 2 + l / 2), 0);
  }
  LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)W), mhi = LLVMConstVector(hi, (unsigned)W);
  for (int r = 1; r < W; r *= 2) {
    for (int i = 0; i < W / 2; i++) {
      nv[2 * i] = LLVMBuildShuffleVector(c->B, v[i], v[i + W / 2], mlo, "");
      nv[2 * i + 1] = LLVMBuildShuffleVector(c->B, v[i], v[i + W / 2], mhi, "");
    }
    memcpy(v, nv, (size_t)W * sizeof *v);
  }
}

/* Rows [kk, kk + W) of b's block for the current panel when b's k axis is the contiguous
 * one (kᵀ read by q @ kᵀ: reading columns along the lanes would gather a cache line per
 * element): per W columns, W vector reads along k (masked past kc and past N),
 * transposed into W rows of the panel. Rows past kc hold zeros and are never read. */
static void pk_pack_bt(Cg *c, LLVMValueRef chunk, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef kk = LLVMBuildMul(B, chunk, cg_ci64(c, c->W), ""), v[64];
  LLVMValueRef kmask = cg_tail_mask(c, LLVMBuildSub(B, pk->kc, kk, ""));
  Ix k = {pk->pc, 1, NULL, pk->t.kc}, P[DVM_MAX_RANK];
  for (int q = 0; q < pk->nv; q++) {
    for (int n = 0; n < c->W; n++) {
      LLVMValueRef col = LLVMBuildAdd(B, pk->j0, cg_ci64(c, (int64_t)q * c->W + n), "");
      LLVMValueRef in = LLVMBuildICmp(B, LLVMIntSLT, col, pk->N, "");
      c->j = kk, c->mask = LLVMBuildAnd(B, kmask, cg_vsplat(c, in, ""), "");
      cg_gm_pos(c, pk->f.b, pk->f.tb ? cg_ix_scalar(col) : k, pk->f.tb ? k : cg_ix_scalar(col), P);
      v[n] = cg_view_at(c, pk->f.b, P);
    }
    c->mask = NULL;
    transpose_sq(c, v);
    for (int n = 0; n < c->W; n++) {
      LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildAdd(B, kk, cg_ci64(c, n), ""), cg_ci64(c, pk->t.nr), ""),
                                      cg_ci64(c, (int64_t)q * c->W), "");
      LLVMSetAlignment(LLVMBuildStore(B, v[n], LLVMBuildGEP2(B, c->f32, pk->sb, &off, 1, "")), (unsigned)(4 * c->W));
    }
  }
}

/* One panel of nr columns in the current row and k blocks. */
static void pk_panel(Cg *c, LLVMValueRef jp, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  int64_t nr = pk->t.nr;
  pk->j0 = LLVMBuildMul(B, jp, cg_ci64(c, nr), "");
  pk->jend = imin(c, LLVMBuildAdd(B, pk->j0, cg_ci64(c, nr), ""), pk->N);
  for (int v = 0; v < pk->nv; v++)
    pk->colmask[v] = cg_tail_mask(c, LLVMBuildSub(B, pk->N, LLVMBuildAdd(B, pk->j0, cg_ci64(c, (int64_t)v * c->W), ""), ""));
  if (pk->f.bpre >= 0) {
    LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildMul(B, jp, pk->K, ""), cg_ci64(c, nr), ""),
                                    LLVMBuildMul(B, pk->pc, cg_ci64(c, nr), ""), "");
    pk->panel = LLVMBuildGEP2(B, c->f32, pk->pb, &off, 1, "panel");
    /* the slice read next: the group's next panel in this k block, else its first panel in
     * the next k block, else the first panel of the next group (or row block) at k = 0 */
    LLVMValueRef j1 = LLVMBuildAdd(B, jp, cg_ci64(c, 1), ""), more = LLVMBuildICmp(B, LLVMIntSLT, j1, pk->gend, "");
    LLVMValueRef after = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, pk->gend, pk->pend, ""), pk->gend, pk->pbegin, "");
    LLVMValueRef nj = LLVMBuildSelect(B, more, j1, LLVMBuildSelect(B, pk->last, after, pk->gbegin, ""), "");
    LLVMValueRef npc = LLVMBuildSelect(B, more, pk->pc, LLVMBuildSelect(B, pk->last, cg_ci64(c, 0), LLVMBuildAdd(B, pk->pc, cg_ci64(c, pk->t.kc), ""), ""), "");
    LLVMValueRef noff = LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildMul(B, nj, pk->K, ""), npc, ""), cg_ci64(c, nr), "");
    pk->next = LLVMBuildGEP2(B, c->f32, pk->pb, &noff, 1, "next");
  } else { /* b's kc x nr block of this panel, read through its view, into the stack block */
    cg_row_bases(c, pk->ic, c->dom, c->r); /* the batch's indices */
    if (pk->bt) /* chunks of W values of k */
      cg_counted(c, cg_ci64(c, 0), LLVMBuildUDiv(B, LLVMBuildAdd(B, pk->kc, cg_ci64(c, c->W - 1), ""), cg_ci64(c, c->W), ""), 1,
              pk_pack_bt, pk);
    else
      cg_counted(c, cg_ci64(c, 0), pk->kc, 1, pk_pack_b, pk);
    pk->panel = pk->sb;
  }
  pk->rows = pk->t.mr;
  LLVMValueRef at = cg_counted(c, pk->ic, pk->mend, pk->t.mr, pk_tile, pk);
  int s = 1;
  while (s * 2 < pk->t.mr) s *= 2;
  for (; s >= 1; s /= 2) { /* the rest: fewer than mr rows, each size at most once */
    pk->rows = s;
    at = cg_counted(c, at, pk->mend, s, pk_tile, pk);
  }
  LLVMBasicBlockRef epi = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.epilogue"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.panel.done");
  LLVMBuildCondBr(B, pk->last, epi, done);
  LLVMPositionBuilderAtEnd(B, epi);
  cg_counted(c, pk->ic, pk->mend, 1, pk_out_row, pk);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
}

/* One block of kc values of k (block kb) for the current row block. */
static void pk_kblock(Cg *c, LLVMValueRef kb, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  pk->pc = LLVMBuildMul(B, kb, cg_ci64(c, pk->t.kc), "");
  LLVMValueRef after = LLVMBuildAdd(B, pk->pc, cg_ci64(c, pk->t.kc), "");
  pk->kc = LLVMBuildSub(B, imin(c, after, pk->K), pk->pc, "");
  pk->first = LLVMBuildICmp(B, LLVMIntEQ, kb, cg_ci64(c, 0), "");
  pk->last = LLVMBuildICmp(B, LLVMIntSGE, after, pk->K, "");
  if (!pk->f.adirect) cg_counted(c, pk->ic, pk->mend, 1, pk_pack_a, pk);
  cg_counted(c, pk->gbegin, pk->gend, 1, pk_panel, pk);
}

/* Group g of the row block's panels: every k block over them. */
static void pk_group(Cg *c, LLVMValueRef g, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  pk->gbegin = LLVMBuildAdd(B, pk->pbegin, LLVMBuildMul(B, g, pk->G, ""), "");
  pk->gend = imin(c, LLVMBuildAdd(B, pk->gbegin, pk->G, ""), pk->pend);
  LLVMValueRef kbs = LLVMBuildSDiv(B, LLVMBuildAdd(B, pk->K, cg_ci64(c, pk->t.kc - 1), ""), cg_ci64(c, pk->t.kc), "");
  kbs = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, kbs, cg_ci64(c, 1), ""), cg_ci64(c, 1), kbs, "");
  cg_counted(c, cg_ci64(c, 0), kbs, 1, pk_kblock, pk);
}

/* Row block ib: block ib % IB of product ib / IB (rows [ib·mb, ib·mb + mb) of [0, M)
 * when there is one product), with its panels in the call's items. */
static void pk_iblock(Cg *c, LLVMValueRef ib, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef prod = LLVMBuildMul(B, LLVMBuildUDiv(B, ib, pk->IB, ""), pk->Mg, "");
  pk->ic = LLVMBuildAdd(B, prod, LLVMBuildMul(B, LLVMBuildURem(B, ib, pk->IB, ""), pk->mb, ""), "");
  pk->mend = imin(c, LLVMBuildAdd(B, pk->ic, pk->mb, ""), LLVMBuildAdd(B, prod, pk->Mg, ""));
  LLVMValueRef first = LLVMBuildMul(B, ib, pk->P, "");
  LLVMValueRef lo = LLVMBuildSub(B, pk->begin, first, ""), hi = LLVMBuildSub(B, pk->end, first, "");
  pk->pbegin = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, lo, cg_ci64(c, 0), ""), cg_ci64(c, 0), lo, "");
  pk->pend = imin(c, hi, pk->P);
  /* groups of panels whose sums for the block's rows take about PK_SUMS bytes */
  LLVMValueRef rows = LLVMBuildSub(B, pk->mend, pk->ic, "");
  rows = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, rows, cg_ci64(c, 1), ""), cg_ci64(c, 1), rows, "");
  LLVMValueRef G = LLVMBuildSDiv(B, cg_ci64(c, PK_SUMS / 4 / pk->t.nr), rows, "");
  pk->G = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, G, cg_ci64(c, 1), ""), cg_ci64(c, 1), G, "");
  LLVMValueRef ng = LLVMBuildSDiv(B, LLVMBuildAdd(B, LLVMBuildSub(B, pk->pend, pk->pbegin, ""), LLVMBuildSub(B, pk->G, cg_ci64(c, 1), ""), ""), pk->G, "");
  cg_counted(c, cg_ci64(c, 0), ng, 1, pk_group, pk);
}

/* Items [begin, end) of a mix kernel whose weight is packed (bufs[ninputs + noutputs]):
 * item t is panel t % P of row block t / P (kn_extent). */
void cg_pk_items(Cg *c, LLVMValueRef begin, LLVMValueRef end, LLVMValueRef L, const KnPack *f) {
  const KnKernel *kk = c->low;
  LLVMBuilderRef B = c->B;
  Pk pk = {.t = kn_tile(c->W), .f = *f, .N = L, .begin = begin, .end = end, .M = cg_ci64(c, 1)};
  for (int d = 0; d + 1 < c->r; d++) pk.M = LLVMBuildMul(B, pk.M, cg_dimval(c, c->dom[d]), "rows");
  pk.Mg = f->batched ? cg_dimval(c, c->dom[c->r - 2]) : pk.M;
  pk.IB = LLVMBuildUDiv(B, LLVMBuildAdd(B, pk.Mg, cg_ci64(c, pk.t.mc - 1), ""), cg_ci64(c, pk.t.mc), "");
  pk.IB = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, pk.IB, cg_ci64(c, 1), ""), cg_ci64(c, 1), pk.IB, "");
  /* rows per block: Mg split evenly over the IB blocks, rounded up to whole micro-kernels,
   * at most mc (so the last block is never empty: Mg > (IB - 1)·mc). A tail block of a few
   * rows would stream all of b for them (W5 1 thread: 2.7% faster at N = 1024, 7 x 144 +
   * 16 rows before; 7% at N = 160). */
  LLVMValueRef even = LLVMBuildUDiv(B, LLVMBuildAdd(B, pk.Mg, LLVMBuildSub(B, pk.IB, cg_ci64(c, 1), ""), ""), pk.IB, "");
  pk.mb = LLVMBuildMul(B, LLVMBuildUDiv(B, LLVMBuildAdd(B, even, cg_ci64(c, pk.t.mr - 1), ""), cg_ci64(c, pk.t.mr), ""), cg_ci64(c, pk.t.mr), "");
  pk.mb = imin(c, pk.mb, cg_ci64(c, pk.t.mc));
  pk.nv = pk.t.nr / c->W;
  pk.K = cg_dimval(c, kk->ins[c->mm_member].kdim);
  pk.acc = cg_buf(c, kk->nin + (uint32_t)kk->full_out); /* the packed path has one */
  /* the packed blocks: static allocas of the entry block (this is still the entry block) */
  if (f->adirect) {
    pk.pa = cg_buf(c, (uint32_t)kn_input(kk, f->a));
  } else {
    pk.sa = LLVMBuildAlloca(B, LLVMArrayType(c->f32, (unsigned)(pk.t.mc * pk.t.kc)), "packed.a");
    LLVMSetAlignment(pk.sa, 64);
    pk.pa = pk.sa; /* the micro-kernel reads a from the packed block */
    if (f->prologue) {
      pk.stats = LLVMBuildAlloca(B, LLVMArrayType(c->f32, (unsigned)(2 * pk.t.mc)), "prologue.stats");
      LLVMSetAlignment(pk.stats, 64);
    }
  }
  if (f->bpre >= 0) {
    LLVMValueRef at = LLVMBuildGEP2(B, c->ptr, c->bufs, (LLVMValueRef[]){cg_ci64(c, kk->nin + kk->nout)}, 1, "");
    pk.pb = LLVMBuildLoad2(B, c->ptr, at, "packed");
  } else {
    pk.sb = LLVMBuildAlloca(B, LLVMArrayType(c->f32, (unsigned)(pk.t.kc * pk.t.nr)), "packed.b");
    LLVMSetAlignment(pk.sb, 64);
  }
  pk.bt = pk.sb && cg_gathers_along(c, f->b, f->tb, 1) && !cg_gathers_along(c, f->b, f->tb, 0);
  if (pk.sa || pk.sb) /* ~210 KB of stack: probe it page by page (a clean fault, never a skip) */
    LLVMAddAttributeAtIndex(c->fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(c->C, "probe-stack", 11, "inline-asm", 10));
  pk.P = LLVMBuildSDiv(B, LLVMBuildAdd(B, L, cg_ci64(c, pk.t.nr - 1), ""), cg_ci64(c, pk.t.nr), "panels");
  LLVMValueRef P1 = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, pk.P, cg_ci64(c, 1), ""), cg_ci64(c, 1), pk.P, "");
  LLVMValueRef ib0 = LLVMBuildSDiv(B, begin, P1, ""), ib1 = LLVMBuildSDiv(B, LLVMBuildAdd(B, end, LLVMBuildSub(B, P1, cg_ci64(c, 1), ""), ""), P1, "");
  cg_counted(c, ib0, ib1, 1, pk_iblock, &pk);
}
