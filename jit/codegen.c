/* jit/codegen.c — a lowered kernel (KnKernel) to LLVM IR, behind the kernel ABI (jit.h).
 *
 * One emitter serves vector and row kernels: the domain's last axis is the "row" (inner
 * loop, vectorized by W lanes of the host width, a masked tail), the other axes are
 * flattened into the outer parallel loop [begin, end). A vector kernel is a row kernel
 * without reductions: one pass that evaluates its members and stores its outputs. A row
 * kernel runs one pass over the row per reduction (reduce_*, and the passes of softmax,
 * log_softmax, layernorm and rmsnorm), recomputing the elementwise members each pass needs
 * from the inputs (the row stays in cache), then an output pass. Every value is a
 * <W x float>: a per-row scalar (a reduction's result, or anything computed from such
 * results only) is a splat, so one path emits every op.
 *
 * Mix kernels: out[m, :] = a[m, :] @ b + epilogue, with a's batch dims flattened into m
 * when b is a 2-D [K, N] matrix, one product per batch otherwise. A param b is read
 * packed (kernel/gemm.c) by a register-blocked micro-kernel with k and row blocking, the
 * epilogue applied per panel on the last k block (jit/gemm.c); views,
 * transposes, batches and a normalization prologue take the same path with a's blocks
 * and b's panels packed on the stack. A 2-D input b read in place: for each block of
 * MIX_ROWS rows and W columns, K fused multiply-adds into one accumulator per row (each
 * b vector loaded once for the block), then the epilogue members on each accumulator
 * and the stores; few rows stream b instead.
 *
 * Operands: an input is read through strides computed from the canonical shapes (stride
 * 0 where it broadcasts), so broadcasting is index math, not copies. Transcendentals go
 * to glibc's libmvec (_ZGVeN16v_tanhf ...), except exp, which is emitted inline (vexp:
 * measured several times faster at ~1 ulp); the tiers are tested against the reference
 * path's double-precision values.
 *
 * Row kernels that keep the last axis and reduce others (column mode, col_item) stream
 * whole rows into per-column accumulators in stack arrays, and with few groups of columns
 * split their rows over the threads into scratch (kn_col_blocks). Layernorm takes its
 * statistics in one pass (ln_stats). What is covered, and why a kernel is not, is
 * kn_supported's: other kernels run on the kernel-level reference path. docs/native.md
 * has the measurements behind these choices.
 *
 * Every kernel shape's loop bodies run the lowered kernel's programs (cg_eval), over one
 * state (Cg); jit/cg.h lists the files the emitter is split into. */
#include <llvm-c/Core.h>
#include <stdlib.h>

#include "cg.h"

void jit_emit_extern(const KnKernel *kk, LLVMContextRef C, LLVMModuleRef M, const char *name);

/* Emit the lowered kernel kk as function `name` into module M (context C); W lanes,
 * libmvec prefix. False: a program read a value before evaluating it (an internal error;
 * the function is not to be used). */
bool jit_emit(const KnKernel *kk, LLVMContextRef C, LLVMModuleRef M, const char *name, int W,
              const char *mvec_prefix) {
  if (kk->kind == KK_EXTERN) {
    jit_emit_extern(kk, C, M, name);
    return true;
  }
  Cg c = {.low = kk, .W = W, .NW = W, .mvec = mvec_prefix, .C = C, .M = M, .mm_member = kk->product,
          .stash_member = -1, .col = kk->col};
  if (c.col) c.W = W * KN_COL_VECS;
  c.f32 = LLVMFloatTypeInContext(C);
  c.i1 = LLVMInt1TypeInContext(C);
  c.i32 = LLVMInt32TypeInContext(C);
  c.i64 = LLVMInt64TypeInContext(C);
  c.ptr = LLVMPointerTypeInContext(C, 0);
  c.vf = LLVMVectorType(c.f32, (unsigned)c.W);
  LLVMTypeRef params[4] = {c.ptr, c.ptr, c.i64, c.i64};
  c.fn = LLVMAddFunction(M, name, LLVMFunctionType(LLVMVoidTypeInContext(C), params, 4, 0));
  c.B = LLVMCreateBuilderInContext(C);
  uint32_t nm = kk->nmem, ni = kk->nin;
  size_t nb = ni + kk->nout;
  LLVMValueRef *mem = calloc(4 * (size_t)nm + 5 * (size_t)ni + nb + kk->ndims + 3 * (size_t)kk->most + 2, sizeof *mem);
  if (!mem) ir_oom();
  c.memo = mem, c.red = mem + nm, c.n1 = mem + 2 * nm, c.n2 = mem + 3 * nm;
  c.base = mem + 4 * nm, c.inner = mem + 4 * nm + 2 * ni;
  c.bufp = mem + 4 * nm + 4 * ni, c.dimv = mem + 4 * nm + 4 * ni + nb;
  c.next = mem + 4 * nm + 4 * ni + nb + kk->ndims;
  /* the reads: values, then value numbers and alignments in a pointer's room each */
  c.reads = c.next + ni, c.rd.v = (uint32_t *)(c.reads + kk->most), c.rd.ctx = (uint8_t *)(c.reads + 2 * kk->most);
  c.bufs = LLVMGetParam(c.fn, 0), c.dims = LLVMGetParam(c.fn, 1);
  LLVMValueRef begin = LLVMGetParam(c.fn, 2), end = LLVMGetParam(c.fn, 3);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(C, c.fn, "entry");
  c.entry = entry;
  LLVMPositionBuilderAtEnd(c.B, entry);
  cg_load_params(&c);
  /* the domain: rows (outer, parallel) x L (the last axis); the reduced axes, the reduced
     shape's rank and multi mode of row kernels (0, r and false elsewhere) */
  int r = kk->r;
  c.r = r, c.rr = kk->rr, c.dom = kk->dom;
  c.axes = kk->axes, c.multi = kk->multi;
  /* column mode: values of KN_COL_VECS host vectors, so that each row of the fold reads
     several cache lines of a column strip (LLVM splits the wide operations) */
  LLVMValueRef L = r ? cg_dimval(&c, c.dom[r - 1]) : cg_ci64(&c, 1);
  c.L = L;
  if (kk->packed) cg_pk_items(&c, begin, end, L, &kk->pack); /* row blocks x panels */
  else if (kk->loop == KL_COLS) cg_col_kernel(&c, begin, end);
  else if (kk->loop == KL_STREAM || kk->loop == KL_GENERAL) cg_mix_kernel(&c, begin, end);
  else cg_row_kernel(&c, begin, end); /* KL_ROWS, KL_MULTI */
  LLVMBuildRetVoid(c.B);
  LLVMDisposeBuilder(c.B);
  free(c.slot);
  free(c.rows4);
  free(mem);
  return !c.broken;
}
