/* jit/loops.c — the loops every kernel shape is built from: over the columns of a row in
 * vectors of W lanes with a masked tail (unrolled into independent accumulators for
 * folds), over the reduced rows of column and multi mode, and counted loops over a range
 * with a body callback. */
#include <llvm-c/Core.h>

#include "cg.h"

static void place_col(Cg *c, LLVMValueRef j) { c->j = j, c->mask = NULL; }

/* Column mode: the reduced axes' multi-index from q, and the inputs' offsets there. */
void cg_place_row(Cg *c, LLVMValueRef q) {
  for (int d = c->r - 2; d >= 0; d--) {
    if (!(c->axes >> d & 1)) continue;
    bool outermost = true;
    for (int e = 0; e < d; e++) outermost &= !(c->axes >> e & 1);
    if (outermost) {
      c->idx[d] = q;
      break;
    }
    LLVMValueRef n = cg_dimval(c, c->dom[d]);
    c->idx[d] = LLVMBuildURem(c->B, q, n, "");
    q = LLVMBuildUDiv(c->B, q, n, "");
  }
  cg_input_bases(c, c->idx);
}

/* while (i + U·unit <= end) { acc[u] = body(acc[u]) placed at i + u·unit, u < U; i += U·unit }:
 * one loop from `from` carrying U accumulators (acc[u] may be NULL: no accumulator);
 * updates acc and returns the exit position. */
LLVMValueRef cg_pos_loop(Cg *c, LLVMValueRef from, LLVMValueRef L, int U, int unit, Place place,
                             LLVMValueRef *acc, Body body, void *arg) {
  LLVMBuilderRef B = c->B;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "col"),
                    body_bb = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef j = LLVMBuildPhi(B, c->i64, "j"), phi[MAXU], next[MAXU];
  for (int u = 0; u < U; u++) phi[u] = acc[u] ? LLVMBuildPhi(B, LLVMTypeOf(acc[u]), "acc") : NULL;
  LLVMValueRef j1 = LLVMBuildAdd(B, j, cg_ci64(c, (int64_t)U * unit), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, j1, L, ""), body_bb, done);
  LLVMPositionBuilderAtEnd(B, body_bb);
  for (int u = 0; u < U; u++) {
    cg_forget(c);
    place(c, u ? LLVMBuildAdd(B, j, cg_ci64(c, (int64_t)u * unit), "") : j);
    next[u] = body(c, arg, phi[u]);
  }
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(j, (LLVMValueRef[]){from, j1}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int u = 0; u < U; u++) {
    if (!phi[u]) continue;
    LLVMAddIncoming(phi[u], (LLVMValueRef[]){acc[u], next[u]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
    acc[u] = phi[u];
  }
  LLVMPositionBuilderAtEnd(B, done);
  cg_forget(c);
  return j;
}

/* The columns of a row: with an accumulator and a combine, U independent accumulators
 * over blocks of U·W columns (a fold is one long dependency chain otherwise), combined,
 * then single vectors; without, single vectors (LLVM unrolls). Then one masked tail if
 * (L - from) % W. Columns [from, L) (cg_columns_u and columns: from 0). Returns the
 * accumulator's final value (NULL without). */
LLVMValueRef cg_columns_from(Cg *c, LLVMValueRef from, LLVMValueRef L, LLVMValueRef acc0, Body body,
                                 Combine comb, void *arg, int U) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef j = from, acc[MAXU];
  if (acc0 && comb && U > 1) {
    for (int u = 0; u < U; u++) acc[u] = acc0;
    j = cg_pos_loop(c, j, L, U, c->W, place_col, acc, body, arg);
    for (int w = 1; w < U; w *= 2) /* a tree: (0+1)+(2+3) */
      for (int u = 0; u + w < U; u += 2 * w) acc[u] = comb(c, arg, acc[u], acc[u + w]);
  } else {
    acc[0] = acc0;
  }
  j = cg_pos_loop(c, j, L, 1, c->W, place_col, acc, body, arg);
  LLVMBasicBlockRef check = LLVMGetInsertBlock(B), tail = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.tail"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.end");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, j, L, ""), tail, done);
  LLVMPositionBuilderAtEnd(B, tail);
  cg_forget(c);
  c->j = j, c->mask = cg_tail_mask(c, LLVMBuildSub(B, L, j, ""));
  LLVMValueRef acc2 = body(c, arg, acc[0]);
  LLVMBasicBlockRef tail_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  cg_forget(c);
  c->mask = NULL;
  if (!acc0) return NULL;
  LLVMValueRef out = LLVMBuildPhi(B, LLVMTypeOf(acc0), "acc.out");
  LLVMAddIncoming(out, (LLVMValueRef[]){acc[0], acc2}, (LLVMBasicBlockRef[]){check, tail_end}, 2);
  return out;
}

LLVMValueRef cg_columns_u(Cg *c, LLVMValueRef L, LLVMValueRef acc0, Body body, Combine comb,
                              void *arg, int U) {
  return cg_columns_from(c, cg_ci64(c, 0), L, acc0, body, comb, arg, U);
}

LLVMValueRef cg_columns(Cg *c, LLVMValueRef L, LLVMValueRef acc0, Body body, void *arg) {
  return cg_columns_u(c, L, acc0, body, NULL, arg, 1);
}
