/* jit/cols.c — column mode: row kernels that keep the last axis and reduce others, by
 * streaming whole rows into per-column accumulators in stack arrays, and with few groups
 * of columns, splitting the reduced rows over the threads into scratch (kn_col_blocks). */
#include <llvm-c/Core.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

/* Full-shaped outputs at the current row of the reduced axes. */
static LLVMValueRef store_full_body(Cg *c, void *arg, LLVMValueRef acc) {
  cg_begin(c, &c->low->store[0]);
  for (uint32_t o = 0; o < c->low->nout; o++) {
    uint32_t v = c->low->out[o];
    if (!c->low->val[v].full) continue;
    LLVMValueRef ob, oin;
    cg_value_base(c, v, c->idx, 0, &ob, &oin);
    cg_store_value(c, v, cg_buf(c, c->low->nin + o), LLVMBuildAdd(c->B, ob, c->j, ""), cg_eval(c, v));
  }
  return acc;
}

/* Column mode streams whole rows: an item is a chunk of up to c->chunk columns (kn_chunk)
 * of one index of the kept outer axes (a group), and each pass reads the chunk's part of
 * every reduced row in order, folding into a stack array of per-column accumulators.
 * Walking down a strip of a few columns instead would read a few lines of each 4 KB row
 * and cross a page per row, where the hardware prefetch stops: 2-3x slower from DRAM. The
 * per-column results of finished passes (the members' red, n1, n2) live in stack arrays
 * too, loaded at each column where later passes and the stores read them.
 *
 * Split (kn_col_blocks): with fewer groups than threads, the reduced rows of each group
 * are cut into P blocks. Items [0, P·G) fold block t / G of group t % G into the scratch
 * buffer (bufs[ninputs + noutputs + 2]); items [P·G, P·G + G), run after all of those,
 * combine the P partial folds of a group, in block order, and store its outputs. Only
 * kernels whose members fold once each, from nothing another fold computes, and that have
 * no full-shaped outputs, split (col_splits). */

typedef struct Stream {
  uint32_t m, x;       /* the member and what its passes read */
  int pass;
  KnPass ps;
  LLVMValueRef part;   /* the pass's accumulators, one per W columns: a stack array ... */
  LLVMValueRef sbase;  /* ... or (a split's block) at sbase + KN_SPLIT_BLOCK·W bytes per W
                          columns of the scratch buffer (argmax: values, then indices) */
  LLVMTypeRef pt;
  LLVMValueRef Lf;     /* the count of reduced rows (splat) */
  bool first;          /* s_fold4: the first rows, from the identity (not loaded) */
} Stream;

/* A stack array of chunk / W values of type t, made once in the entry block. */
static LLVMValueRef stack_array(Cg *c, LLVMTypeRef t) {
  LLVMBasicBlockRef at = LLVMGetInsertBlock(c->B);
  LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
  if (first) LLVMPositionBuilderBefore(c->B, first);
  else LLVMPositionBuilderAtEnd(c->B, c->entry);
  LLVMValueRef a = LLVMBuildAlloca(c->B, LLVMArrayType2(t, (uint64_t)(c->chunk / c->W)), "cols");
  LLVMPositionBuilderAtEnd(c->B, at);
  return a;
}

/* The current column's block of W columns, counted from the item's first. */
static LLVMValueRef col_block(Cg *c) {
  return LLVMBuildUDiv(c->B, LLVMBuildSub(c->B, c->j, c->j0, ""), cg_ci64(c, c->W), "");
}

/* The element of stack array a (of t) at the current column. */
static LLVMValueRef col_slot(Cg *c, LLVMTypeRef t, LLVMValueRef a) {
  LLVMValueRef jb = col_block(c);
  return LLVMBuildGEP2(c->B, t, a, &jb, 1, "");
}

/* p + off bytes. */
static LLVMValueRef byte_at(Cg *c, LLVMValueRef p, LLVMValueRef off) {
  return LLVMBuildGEP2(c->B, LLVMInt8TypeInContext(c->C), p, &off, 1, "");
}

/* The accumulators of stream s at the current column. */
static LLVMValueRef part_load(Cg *c, const Stream *s) {
  if (!s->sbase) return LLVMBuildLoad2(c->B, s->pt, col_slot(c, s->pt, s->part), "");
  LLVMValueRef at = byte_at(c, s->sbase, LLVMBuildMul(c->B, col_block(c), cg_ci64(c, KN_SPLIT_BLOCK * c->W), "")), v;
  if (LLVMGetTypeKind(s->pt) != LLVMStructTypeKind) {
    v = LLVMBuildLoad2(c->B, s->pt, at, "");
    LLVMSetAlignment(v, 64);
    return v;
  }
  LLVMTypeRef vi = LLVMStructGetTypeAtIndex(s->pt, 1);
  LLVMValueRef a = LLVMBuildLoad2(c->B, c->vf, at, ""), ix = LLVMBuildLoad2(c->B, vi, byte_at(c, at, cg_ci64(c, 4 * c->W)), "");
  LLVMSetAlignment(a, 64), LLVMSetAlignment(ix, 64);
  v = LLVMBuildInsertValue(c->B, LLVMGetUndef(s->pt), a, 0, "");
  return LLVMBuildInsertValue(c->B, v, ix, 1, "");
}

static void part_store(Cg *c, const Stream *s, LLVMValueRef v) {
  if (!s->sbase) {
    LLVMBuildStore(c->B, v, col_slot(c, s->pt, s->part));
    return;
  }
  LLVMValueRef at = byte_at(c, s->sbase, LLVMBuildMul(c->B, col_block(c), cg_ci64(c, KN_SPLIT_BLOCK * c->W), ""));
  if (LLVMGetTypeKind(s->pt) != LLVMStructTypeKind) {
    LLVMSetAlignment(LLVMBuildStore(c->B, v, at), 64);
    return;
  }
  LLVMSetAlignment(LLVMBuildStore(c->B, LLVMBuildExtractValue(c->B, v, 0, ""), at), 64);
  LLVMSetAlignment(LLVMBuildStore(c->B, LLVMBuildExtractValue(c->B, v, 1, ""), byte_at(c, at, cg_ci64(c, 4 * c->W))), 64);
}

/* The finished members' per-column results at the current column. */
static void load_states(Cg *c) {
  for (uint32_t i = 0; i < 3 * c->low->nmem; i++)
    if (c->ready[i]) c->red[i] = LLVMBuildLoad2(c->B, c->slot_t[i], col_slot(c, c->slot_t[i], c->slot[i]), "");
}

static void forget_states(Cg *c) { memset(c->red, 0, 3 * c->low->nmem * sizeof *c->red); }

/* The accumulators' type and the identity of stream s's fold. */
static LLVMValueRef s_identity(Cg *c, const Stream *s) {
  if (s->ps.what != W_ARGMAX) return cg_identity(c, s->ps.f, (DType)c->low->val[s->x].t);
  LLVMTypeRef parts[2] = {c->vf, LLVMVectorType(c->i64, (unsigned)c->W)};
  LLVMTypeRef st = LLVMStructTypeInContext(c->C, parts, 2, 0);
  LLVMValueRef v = LLVMBuildInsertValue(c->B, LLVMGetUndef(st), cg_splatf(c, -INFINITY), 0, "");
  return LLVMBuildInsertValue(c->B, v, LLVMConstNull(parts[1]), 1, "");
}

static LLVMValueRef s_init(Cg *c, void *arg, LLVMValueRef acc) {
  part_store(c, arg, s_identity(c, arg));
  return acc;
}

/* The current row's value at the current columns folded into accumulators a. */
static LLVMValueRef s_step(Cg *c, Stream *s, LLVMValueRef a) {
  Pass ps = {s->ps.f, (DType)c->low->val[s->x].t, s->x, s->ps.what, (int)s->m, &c->low->ins[s->m].prog[s->pass]};
  if (s->ps.what == W_ARGMAX) return cg_am_col_body(c, &ps, a);
  return cg_pass_body(c, &ps, a);
}

/* One row at the current columns, folded into the accumulators. */
static LLVMValueRef s_fold(Cg *c, void *arg, LLVMValueRef acc) {
  Stream *s = arg;
  load_states(c);
  part_store(c, s, s_step(c, s, part_load(c, s)));
  forget_states(c);
  return acc;
}

/* A loop body over rows: body at every column of the item's chunk. */
typedef struct RowBody {
  Body body;
  void *arg;
} RowBody;

static LLVMValueRef s_chunk(Cg *c, void *arg, LLVMValueRef acc) {
  RowBody *rb = arg;
  cg_columns_from(c, c->j0, c->jend, NULL, rb->body, NULL, rb->arg, 1);
  return acc;
}

/* Four rows at once: their offsets kept by place_rows4, each row's values folded in
 * turn (the same order as one row at a time), so the accumulators are loaded and stored
 * once per four rows. */
#define ROW_STATE(c) (4 * (size_t)(c)->low->nin + DVM_MAX_RANK)

static void place_rows4(Cg *c, LLVMValueRef q) {
  size_t ni2 = 2 * (size_t)c->low->nin;
  for (int u = 0; u < 4; u++) {
    LLVMValueRef *at = c->rows4 + u * ROW_STATE(c);
    cg_place_row(c, u ? LLVMBuildAdd(c->B, q, cg_ci64(c, u), "") : q);
    memcpy(at, c->base, ni2 * sizeof *at);
    memcpy(at + ni2, c->inner, ni2 * sizeof *at);
    memcpy(at + 2 * ni2, c->idx, DVM_MAX_RANK * sizeof *at);
  }
}

static LLVMValueRef s_fold4(Cg *c, void *arg, LLVMValueRef acc) {
  Stream *s = arg;
  size_t ni2 = 2 * (size_t)c->low->nin;
  load_states(c);
  LLVMValueRef a = s->first ? s_identity(c, s) : part_load(c, s);
  for (int u = 0; u < 4; u++) {
    const LLVMValueRef *at = c->rows4 + u * ROW_STATE(c);
    memcpy(c->base, at, ni2 * sizeof *at);
    memcpy(c->inner, at + ni2, ni2 * sizeof *at);
    memcpy(c->idx, at + 2 * ni2, DVM_MAX_RANK * sizeof *at);
    cg_forget(c);
    a = s_step(c, s, a);
  }
  part_store(c, s, a);
  forget_states(c);
  return acc;
}

/* Stream s's accumulators from rows [r0, r1): the first four rows from the identity, or
 * with fewer rows the identity stored first; then four rows at a time, then one. */
static void fold_rows(Cg *c, LLVMValueRef r0, LLVMValueRef r1, Stream *s) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef none[1] = {NULL}, r4 = LLVMBuildAdd(B, r0, cg_ci64(c, 4), "");
  LLVMBasicBlockRef first = LLVMAppendBasicBlockInContext(c->C, c->fn, "rows.first"),
                    init = LLVMAppendBasicBlockInContext(c->C, c->fn, "rows.init"),
                    rest = LLVMAppendBasicBlockInContext(c->C, c->fn, "rows.rest");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, r4, r1, ""), first, init);
  LLVMPositionBuilderAtEnd(B, first);
  place_rows4(c, r0);
  s->first = true;
  cg_columns_from(c, c->j0, c->jend, NULL, s_fold4, NULL, s, 1);
  s->first = false;
  LLVMBasicBlockRef first_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, rest);
  LLVMPositionBuilderAtEnd(B, init);
  cg_columns_from(c, c->j0, c->jend, NULL, s_init, NULL, s, 1);
  LLVMBasicBlockRef init_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, rest);
  LLVMPositionBuilderAtEnd(B, rest);
  LLVMValueRef q = LLVMBuildPhi(B, c->i64, "rows.from");
  LLVMAddIncoming(q, (LLVMValueRef[]){r4, r0}, (LLVMBasicBlockRef[]){first_end, init_end}, 2);
  cg_forget(c);
  q = cg_pos_loop(c, q, r1, 1, 4, place_rows4, none, s_chunk, &(RowBody){s_fold4, s});
  cg_pos_loop(c, q, r1, 1, 1, cg_place_row, none, s_chunk, &(RowBody){s_fold, s});
}

/* Member s->m's results from its pass's folds a, kept in its stack arrays for what comes
 * later (whole items; a split's combine stores its outputs at once instead). */
static void s_keep(Cg *c, const Stream *s, LLVMValueRef a) {
  if (s->ps.what == W_ARGMAX) a = LLVMBuildExtractValue(c->B, a, 1, "");
  cg_finish_pass(c, s->m, s->pass, a, s->Lf);
  for (uint32_t q = 0; q < 3; q++) {
    uint32_t i = q * c->low->nmem + s->m; /* red, n1, n2 */
    if (c->ready[i] || !c->red[i]) continue;
    if (!c->slot[i]) c->slot_t[i] = LLVMTypeOf(c->red[i]), c->slot[i] = stack_array(c, c->slot_t[i]);
    LLVMBuildStore(c->B, c->red[i], col_slot(c, c->slot_t[i], c->slot[i]));
  }
}

static LLVMValueRef s_finish(Cg *c, void *arg, LLVMValueRef acc) {
  load_states(c);
  s_keep(c, arg, part_load(c, arg));
  forget_states(c);
  return acc;
}

static LLVMValueRef s_store_full(Cg *c, void *arg, LLVMValueRef acc) {
  load_states(c);
  store_full_body(c, arg, acc);
  forget_states(c);
  return acc;
}

/* The reduced-shaped outputs at the current columns (c->red etc. loaded or computed). */
static void store_reduced(Cg *c) {
  cg_begin(c, &c->low->store[1]);
  for (uint32_t o = 0; o < c->low->nout; o++) {
    uint32_t v = c->low->out[o];
    if (c->low->val[v].full) continue;
    LLVMValueRef ob, oin;
    cg_value_base(c, v, c->idx, c->low->val[v].ctx, &ob, &oin); /* ctx: rank rr < r (axes != 0 here) */
    cg_store_value(c, v, cg_buf(c, c->low->nin + o), LLVMBuildAdd(c->B, ob, c->j, ""), cg_eval(c, v));
  }
}

/* The last pass's results, then the reduced outputs (a kernel without full-shaped ones). */
static LLVMValueRef s_finish_store(Cg *c, void *arg, LLVMValueRef acc) {
  load_states(c);
  s_keep(c, arg, part_load(c, arg));
  store_reduced(c);
  forget_states(c);
  return acc;
}

static LLVMValueRef s_store_reduced(Cg *c, void *arg, LLVMValueRef acc) {
  (void)arg;
  load_states(c);
  store_reduced(c);
  forget_states(c);
  return acc;
}

/* Stream s for pass i of member m (its accumulators not placed yet). */
static Stream stream_of(Cg *c, uint32_t m, int i, KnPass ps, LLVMValueRef Lf) {
  Stream s = {.m = m, .x = c->low->ins[m].arg[0], .pass = i, .ps = ps, .Lf = Lf};
  s.pt = LLVMTypeOf(s_identity(c, &s));
  return s;
}

/* Group g of the outer range: its columns [j0, jend) and the kept outer indices; returns
 * the count of reduced rows. */
static LLVMValueRef col_group(Cg *c, LLVMValueRef g) {
  LLVMBuilderRef B = c->B;
  int r = c->r;
  LLVMValueRef L = cg_dimval(c, c->dom[r - 1]), CH = cg_ci64(c, c->chunk);
  LLVMValueRef nc = LLVMBuildUDiv(B, LLVMBuildAdd(B, L, cg_ci64(c, c->chunk - 1), ""), CH, "chunks");
  LLVMValueRef ko = LLVMBuildUDiv(B, g, nc, "");
  c->j0 = LLVMBuildMul(B, LLVMBuildURem(B, g, nc, ""), CH, "");
  LLVMValueRef e = LLVMBuildAdd(B, c->j0, CH, "");
  c->jend = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, e, L, ""), e, L, "");
  LLVMValueRef R = cg_ci64(c, 1);
  bool outer_done = false;
  for (int d = r - 2; d >= 0; d--) {
    if (c->axes >> d & 1) {
      R = LLVMBuildMul(B, R, cg_dimval(c, c->dom[d]), "");
      c->idx[d] = cg_ci64(c, 0);
      continue;
    }
    bool outermost = true;
    for (int e2 = 0; e2 < d; e2++) outermost &= (c->axes >> e2 & 1) != 0;
    if (outermost && !outer_done) {
      c->idx[d] = ko, outer_done = true;
    } else {
      LLVMValueRef n = cg_dimval(c, c->dom[d]);
      c->idx[d] = LLVMBuildURem(B, ko, n, "");
      ko = LLVMBuildUDiv(B, ko, n, "");
    }
  }
  forget_states(c);
  cg_forget(c);
  return R;
}

/* The reduced outer indices at 0 and the inputs' offsets there: where reduced-shaped
 * outputs are stored. */
static void at_reduced(Cg *c) {
  for (int d = 0; d < c->r - 1; d++)
    if (c->axes >> d & 1) c->idx[d] = cg_ci64(c, 0);
  cg_input_bases(c, c->idx);
  cg_forget(c);
}

/* A whole group: the passes, then the full-shaped outputs row by row, then the reduced
 * ones. */
static void col_whole(Cg *c, LLVMValueRef g) {
  LLVMValueRef R = col_group(c, g), none[1] = {NULL};
  LLVMValueRef Lf = cg_vsplat(c, LLVMBuildSIToFP(c->B, R, c->f32, ""), "");
  bool full = false;
  for (uint32_t o = 0; o < c->low->nout; o++) full |= c->low->val[c->low->out[o]].full;
  int left = 0; /* passes to go */
  for (uint32_t m = 0; m < c->low->nmem; m++) left += c->low->ins[m].np;
  memset(c->ready, 0, 3 * c->low->nmem);
  for (uint32_t m = 0; m < c->low->nmem; m++) {
    const KnPass *ps = c->low->ins[m].pass;
    int np = c->low->ins[m].np;
    for (int i = 0; i < np; i++) {
      Stream s = stream_of(c, m, i, ps[i], Lf);
      int q = 0; /* one accumulator array per type, shared by the passes */
      while (q < 4 && c->part_t[q] && c->part_t[q] != s.pt) q++;
      if (q == 4) ir_oom(); /* four types at most: f32, i32, i64 and argmax's pairs */
      if (!c->part_t[q]) c->part_t[q] = s.pt, c->part[q] = stack_array(c, s.pt);
      s.part = c->part[q];
      fold_rows(c, cg_ci64(c, 0), R, &s);
      if (--left == 0 && !full) { /* the last pass stores the outputs at once */
        at_reduced(c);
        cg_columns_from(c, c->j0, c->jend, NULL, s_finish_store, NULL, &s, 1);
        return;
      }
      cg_columns_from(c, c->j0, c->jend, NULL, s_finish, NULL, &s, 1);
      for (uint32_t q3 = 0; q3 < 3; q3++) {
        uint32_t k3 = q3 * c->low->nmem + m;
        c->ready[k3] |= c->slot[k3] != NULL;
      }
    }
  }
  if (full) cg_pos_loop(c, cg_ci64(c, 0), R, 1, 1, cg_place_row, none, s_chunk, &(RowBody){s_store_full, NULL});
  at_reduced(c);
  cg_columns_from(c, c->j0, c->jend, NULL, s_store_reduced, NULL, NULL, 1);
}

typedef struct Split {
  LLVMValueRef P, G, R, Lf;
  LLVMValueRef grp, blk; /* group and block */
  LLVMValueRef scratch; /* bufs[ninputs + noutputs + 2] */
  LLVMValueRef group;   /* bytes of one (group, block) pair: members x blocks of W columns */
  LLVMValueRef member;  /* ... and of one member in it */
} Split;

/* Where member slot n's accumulators of block p of group sp->grp start. */
static LLVMValueRef split_base(Cg *c, const Split *sp, LLVMValueRef p, int n) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef pair = LLVMBuildAdd(B, LLVMBuildMul(B, sp->grp, sp->P, ""), p, "");
  LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, pair, sp->group, ""), LLVMBuildMul(B, cg_ci64(c, n), sp->member, ""), "");
  return byte_at(c, sp->scratch, off);
}

/* Block sp->blk of group sp->grp: its rows folded into its accumulators in the scratch. */
static void col_block_fold(Cg *c, Split *sp) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef r0 = LLVMBuildSDiv(B, LLVMBuildMul(B, sp->blk, sp->R, ""), sp->P, "");
  LLVMValueRef r1 = LLVMBuildSDiv(B, LLVMBuildMul(B, LLVMBuildAdd(B, sp->blk, cg_ci64(c, 1), ""), sp->R, ""), sp->P, "");
  int n = 0;
  for (uint32_t m = 0; m < c->low->nmem; m++) {
    if (c->low->ins[m].np != 1) continue;
    Stream s = stream_of(c, m, 0, c->low->ins[m].pass[0], sp->Lf);
    s.sbase = split_base(c, sp, sp->blk, n++);
    fold_rows(c, r0, r1, &s);
  }
}

typedef struct Combine1 {
  Stream *s;
  const Split *sp;
  int n;
} Combine1;

/* Block q's accumulators at the current column folded into acc. */
static LLVMValueRef s_combine1(Cg *c, void *arg, LLVMValueRef acc) {
  Combine1 *cb = arg;
  Stream s = *cb->s;
  s.sbase = split_base(c, cb->sp, c->kk, cb->n);
  LLVMValueRef b = part_load(c, &s);
  if (s.ps.what == W_ARGMAX) return cg_am_pick(c, acc, b);
  return cg_fold_op(c, s.ps.f, (DType)c->low->val[s.x].t, acc, b);
}

static void place_block(Cg *c, LLVMValueRef q) { c->kk = q; }

/* The current columns of a split group: every member's P blocks combined in order, its
 * results, then the reduced outputs. */
static LLVMValueRef s_combine(Cg *c, void *arg, LLVMValueRef acc) {
  const Split *sp = arg;
  LLVMValueRef j = c->j, mask = c->mask;
  int n = 0;
  for (uint32_t m = 0; m < c->low->nmem; m++) {
    if (c->low->ins[m].np != 1) continue;
    Stream s = stream_of(c, m, 0, c->low->ins[m].pass[0], sp->Lf);
    Combine1 cb = {&s, sp, n++};
    LLVMValueRef a[1] = {s_identity(c, &s)};
    cg_pos_loop(c, cg_ci64(c, 0), sp->P, 1, 1, place_block, a, s_combine1, &cb);
    c->j = j, c->mask = mask;
    if (s.ps.what == W_ARGMAX) a[0] = LLVMBuildExtractValue(c->B, a[0], 1, "");
    cg_finish_pass(c, m, 0, a[0], sp->Lf);
  }
  store_reduced(c);
  forget_states(c);
  return acc;
}

/* A split kernel's item t (P > 1): a block's fold, or a group's combine. */
static void col_split_item(Cg *c, LLVMValueRef t, Split *sp) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef folds = LLVMBuildMul(B, sp->P, sp->G, "");
  LLVMBasicBlockRef fold = LLVMAppendBasicBlockInContext(c->C, c->fn, "split.fold"),
                    comb = LLVMAppendBasicBlockInContext(c->C, c->fn, "split.combine"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "split.done");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, t, folds, ""), fold, comb);
  LLVMPositionBuilderAtEnd(B, fold);
  sp->grp = LLVMBuildURem(B, t, sp->G, ""), sp->blk = LLVMBuildUDiv(B, t, sp->G, "");
  sp->R = col_group(c, sp->grp);
  sp->Lf = cg_vsplat(c, LLVMBuildSIToFP(B, sp->R, c->f32, ""), "");
  col_block_fold(c, sp);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, comb);
  sp->grp = LLVMBuildSub(B, t, folds, "");
  sp->R = col_group(c, sp->grp);
  sp->Lf = cg_vsplat(c, LLVMBuildSIToFP(B, sp->R, c->f32, ""), "");
  at_reduced(c);
  cg_columns_from(c, c->j0, c->jend, NULL, s_combine, NULL, sp, 1);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  cg_forget(c);
}

/* Column mode's item t: a whole group when the kernel does not split (P = dims[ndims] is
 * 1), else col_split_item. */
static void col_item(Cg *c, LLVMValueRef t, void *arg) {
  Split *sp = arg;
  if (!sp) {
    col_whole(c, t);
    return;
  }
  LLVMBuilderRef B = c->B;
  LLVMBasicBlockRef whole = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.whole"),
                    split = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.split"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.item.done");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, sp->P, cg_ci64(c, 1), ""), split, whole);
  LLVMPositionBuilderAtEnd(B, whole);
  col_whole(c, t);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, split);
  col_split_item(c, t, sp);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  cg_forget(c);
}

/* Column mode's kernel: items of groups of columns (col_item), or with a split, blocks of
 * them and then the combine items (kn_col_blocks). */
void cg_col_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end) {
  const KnKernel *kk = c->low;
  uint32_t nm = kk->nmem, ni = kk->nin;
  const KnDim *dom = c->dom;
  int r = c->r;
  LLVMValueRef L = c->L;
  c->chunk = kn_chunk(kk, c->NW);
  c->slot = calloc(3 * (size_t)nm, sizeof *c->slot + sizeof *c->slot_t + 1);
  if (!c->slot) ir_oom();
  c->slot_t = (LLVMTypeRef *)(c->slot + 3 * nm), c->ready = (uint8_t *)(c->slot_t + 3 * nm);
  if (!(c->rows4 = calloc(4 * ROW_STATE(c), sizeof *c->rows4))) ir_oom();
  Split sp = {0}, *split = NULL;
  int folds = kk->splits;
  if (folds) { /* the blocks, groups and scratch layout of kn_col_blocks */
    LLVMBuilderRef B = c->B;
    LLVMValueRef at = LLVMBuildGEP2(B, c->i64, c->dims, (LLVMValueRef[]){cg_ci64(c, kk->ndims)}, 1, "");
    sp.P = LLVMBuildLoad2(B, c->i64, at, "blocks");
    at = LLVMBuildGEP2(B, c->ptr, c->bufs, (LLVMValueRef[]){cg_ci64(c, ni + kk->nout + 2)}, 1, "");
    sp.scratch = LLVMBuildLoad2(B, c->ptr, at, "scratch");
    LLVMValueRef rows = cg_ci64(c, 1), CH = cg_ci64(c, c->chunk), W = cg_ci64(c, c->W);
    for (int d = 0; d < r - 1; d++)
      if (!(kk->axes >> d & 1)) rows = LLVMBuildMul(B, rows, cg_dimval(c, dom[d]), "");
    sp.G = LLVMBuildMul(B, rows, LLVMBuildUDiv(B, LLVMBuildAdd(B, L, cg_ci64(c, c->chunk - 1), ""), CH, ""), "groups");
    LLVMValueRef cols = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, L, CH, ""), L, CH, "");
    LLVMValueRef nb = LLVMBuildUDiv(B, LLVMBuildAdd(B, cols, cg_ci64(c, c->W - 1), ""), W, "");
    sp.member = LLVMBuildMul(B, nb, cg_ci64(c, KN_SPLIT_BLOCK * c->W), "");
    sp.group = LLVMBuildMul(B, sp.member, cg_ci64(c, folds), "");
    split = &sp;
  }
  cg_counted(c, begin, end, 1, col_item, split);
}
