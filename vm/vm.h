/* vm/vm.h — tier 0: fused kernels as tile bytecode, encoded in microseconds and run by
 * an interpreter whose every instruction works on a whole tile.
 *
 * ISA. Registers hold tiles of VM_T = 256 lanes of 32 bits (f32, i32, or bool as 0/1);
 * an i64 tile (integer values, view indices) takes two consecutive registers. A kernel
 * uses at most VM_MAXREG registers (its register file, 1 KiB each, stays in L1: W1–W8's
 * kernels use 3–12) and VM_MAXS int64 scalar registers (positions, offsets, dims). Each
 * instruction is 64 bits:
 *
 *     bits  0– 7  op    VmOp (vm/ops.def: the one opcode table)
 *     bits  8–15  d     destination (or the stored tile)
 *     bits 16–23  a     first operand
 *     bits 24–31  b     second operand / buffer index
 *     bits 32–63  imm   signed: a third register, a constant-pool index, a stride, a dim,
 *                       or three registers in its bytes 0–2 (operand kind p)
 *
 * A program is a straight run of instructions ending in END, evaluated at one tile
 * position: the current multi-index of the domain's outer axes (scalar registers
 * VS_IDX + d), columns [S[VS_J], S[VS_J] + n) of the last axis along the lanes, and (the
 * general matmul) the contraction index S[VS_K]. The interpreter dispatches by computed
 * goto (a switch without GCC); each body is a loop over the tile in host-width vectors.
 *
 * Kernel shapes (the same as the native tier's, jit/rows.c, cols.c, mix.c and gemm.c, and
 * the same results):
 *   rows     vector and row kernels: per row of the domain, one program per reduction
 *            pass (ending in a fold instruction into the pass's accumulators), then the
 *            output program; each per tile, or, a whole-row program (VmProg.whole), over
 *            spans of the row's whole vectors (up to VM_SPAN lanes) and then its last
 *            L % VW lanes: its registers name the buffers' rows, so nothing is copied and
 *            an instruction's loop runs as long as the row
 *   cols     reductions over axes other than the last: items of VM_T columns, folds run
 *            down the reduced rows
 *   mix      matmul + epilogue, a 2-D weight: a register-blocked tile loop (over the
 *            weight's packed panels when the runtime passes them, kernel/gemm.c), then the
 *            epilogue program with the product in a fixed register
 *   gemm     any other matmul (views, batches, transposes): per k, one program reads a's
 *            element and one b's tile
 *   extern   a `call` node: no program, one call of the registered function through
 *            libffi (extern.c)
 * Per-row results of reductions live in reserved registers ("slots") that later programs
 * read like any other tile, or as one value (operand kind u).
 *
 * Kernel ABI: vm_exec(code, bufs, dims, begin, end) is the native kernel's signature with
 * the bytecode as its first argument; [begin, end) is a slice of vm_extent.
 *
 * Elementwise results are bit-identical to the native tier's on the same host: the same
 * operation sequences, exp emitted the same way, and the same libmvec functions of the
 * host's width. Row kernels' folds keep the native tier's four accumulators and order, so
 * their results are bit-identical too; column-mode folds sum in another order.
 *
 * Files: encode.c, eval.c, shapes.c, disasm.c (a lowered kernel -> bytecode: one walk,
 * registers by liveness, the disassembly; their private map is enc.h),
 * run.c (the interpreter and the drivers of the four shapes, built once per host ISA
 * from exec.inc), extern.c (extern kernels). */
#ifndef DVM_VM_H
#define DVM_VM_H

#include "../kernel/kernel.h"

enum {
  VM_T = 256,      /* lanes of a tile */
  VM_MAXREG = 64,  /* tile registers of a kernel */
  VM_MAXS = 256,   /* scalar registers of a kernel */
  VM_MIXROWS = 4,  /* rows and columns drivers: tiles of fold accumulators */
  VM_MC = 144,     /* mix: rows of a block at every host width (a's block and the sums in L2) */
  VM_KC = KN_KC,   /* mix: values of k per block */
  VM_FOLDV = 4,    /* a fold's accumulators: vectors of the host width (ops.def) */
  VM_SPAN = 2048   /* a whole-row program's longest span of lanes (a multiple of 4·16) */
};

/* Reserved scalar registers; the drivers write them, programs read them. */
enum { VS_J = 0, VS_K = 1, VS_IDX = 2, VS_FREE = VS_IDX + DVM_MAX_RANK };

typedef enum VmOp {
#define VMOP(id, fmt) VM_##id,
#include "ops.def"
#undef VMOP
  VM_NOPS
} VmOp;

typedef struct VmIns {
  uint8_t op, d, a, b;
  int32_t imm;
} VmIns;

typedef struct VmProg {
  uint32_t start, n; /* instructions [start, start + n) of VmCode.code, END included */
  bool whole;        /* rows: runs over spans of up to VM_SPAN lanes instead of tiles (every
                        register it reads names a buffer's row or is read as one value, and
                        every result is a fold or written in place: encode.c span_ok) */
} VmProg;

typedef enum VmMode { VMM_ROWS, VMM_COLS, VMM_MIX, VMM_GEMM, VMM_EXTERN } VmMode;
/* VMF_MAXORD: v > acc ? v : acc (maxps), NaNs passed over: softmax's max, as the native
   tier's FOLD_MAX_ORD (a NaN of the row reaches every result through the sum pass). */
typedef enum VmFold { /* the kernel layer's folds (kernel.h Fold), by the same numbers */
  VMF_SUM = FOLD_SUM, VMF_MAX = FOLD_MAX, VMF_MIN = FOLD_MIN, VMF_PROD = FOLD_PROD, VMF_MAXORD = FOLD_MAX_ORD
} VmFold;
/* What a pass makes of its folded value (per lane, in slot `slot`): the kernel layer's
 * KnPost by the same numbers, and the VM's one-pass layernorm. */
typedef enum VmPost {
  VMP_COPY = KP_COPY,     /* the fold itself */
  VMP_MEAN = KP_MEAN,     /* fold / L */
  VMP_RECIP = KP_RECIP,   /* 1 / fold (softmax) */
  VMP_LOGADD = KP_LOGADD, /* slot aux + log(fold) (log_softmax) */
  VMP_RSQRT = KP_RSQRT,   /* 1 / sqrt(fold / L + eps) (layernorm in column mode, rmsnorm) */
  VMP_LNSHIFT = KP_COUNT  /* a FOLDSH's mean, and 1 / sqrt(var + eps) into slot aux (layernorm) */
} VmPost;

typedef struct VmPass {
  VmProg prog;        /* rows: ends with a fold instruction into slot's accumulators */
  uint8_t fold, post; /* VmFold, VmPost */
  uint8_t src;        /* cols: the register holding the quantity the driver folds */
  uint8_t slot, aux;  /* result register; VMP_LOGADD's and VMP_LNSHIFT's other slot */
  bool splat;         /* rows: an instruction reads the slot (or VMP_LNSHIFT's aux) as a tile
                         (not only as one value, u), so the driver copies its value into
                         every lane */
  float eps;
} VmPass;

/* A dim of the kernel: a constant, or its dim parameter q. */
typedef struct VmDim {
  int64_t c;
  int32_t q; /* -1: constant */
} VmDim;

/* Where a buffer's element at the current position is: sum over the domain's outer axes
 * d of S[VS_IDX + d]·stride_d, strides from the value's dims; written to scalar reg. */
typedef struct VmBase {
  uint32_t buf;               /* buffer index (inputs, then outputs) */
  uint8_t reg;                /* scalar register receiving the offset */
  uint8_t rank;
  int8_t axis[DVM_MAX_RANK];  /* per dim of the value: the domain axis, -1 broadcast */
  uint16_t dim[DVM_MAX_RANK]; /* per dim: index in VmCode.dimtab */
} VmBase;

typedef struct VmCode {
  uint8_t mode;               /* VmMode */
  uint8_t r;                  /* domain rank */
  uint32_t axes;              /* reduced axes (rows, cols) */
  uint32_t ninputs, noutputs, ndims;
  VmIns *code;
  uint32_t ncode;
  int64_t *pool;              /* constants: f32 bits or int64 */
  uint32_t npool;
  VmPass *pass;
  uint32_t npass;
  VmProg full, reduced;       /* stores of full-shaped outputs / of reduced-shape outputs */
  VmProg prog_a, prog_b;      /* gemm: a's element and b's tile at S[VS_K] */
  uint8_t a_reg, b_reg, mm_reg; /* gemm: their results; mix, gemm: the product */
  uint32_t a_buf, b_buf;      /* mix: a's and b's buffers */
  bool packed;                /* mix: b is a param whose packed copy (kn_pack) the runtime may
                                 pass as bufs[ninputs + noutputs] (NULL there: b read as it is) */
  bool has_prologue;          /* mix: a is a normalization member (a prologue, docs/fusion.md) ... */
  uint32_t prologue;          /* ... this graph value (KnVal.id, as the runtime indexes its
                                 values): computed by the mix driver (pro_kind), else
                                 by the runtime into bufs[ninputs + noutputs + 1] before the
                                 call (a_buf names it) */
  uint8_t pro_kind;           /* 0, or the prologue computed per row block: 1 layernorm, 2 rmsnorm, */
  uint32_t pro_x, pro_g, pro_b; /* its x, gamma, beta inputs (each a [K] row's scale), */
  float pro_eps;              /* and eps */
  VmDim K;                    /* mix, gemm: the contraction length */
  VmBase *base;
  uint32_t nbase;
  VmDim *dimtab;              /* every dim the drivers need; dimtab[0..r) is the domain */
  uint32_t ndimtab;
  uint32_t nreg, nsreg;       /* registers used */
  double encode_us;
  struct KnExt *ext;         /* VMM_EXTERN: the call (kernel/extern.c, vm/extern.c) */
  void *arrays;               /* the one block code, pool, pass, base and dimtab live in */
} VmCode;

/* shapes.c, disasm.c */
/* Encode the lowered kernel kk. NULL if the VM cannot run it, with the reason in why
 * (such kernels run on the kernel-level reference path); out of memory aborts (ir_oom). */
VmCode *vm_encode(const KnKernel *kk, char *why, size_t n);
void vm_free(VmCode *c);
/* The disassembly of c (malloc'd). */
char *vm_disasm(const VmCode *c);

/* extern.c */
/* An extern kernel whose call kk planned: the plan, no instructions. */
VmCode *vm_encode_extern(const KnKernel *kk);
/* Run it (vm_exec does for VMM_EXTERN): one call through libffi if begin < end. */
void vm_call(const VmCode *c, void *const *bufs, const int64_t *dims, int64_t begin, int64_t end);
char *vm_disasm_extern(const VmCode *c);

/* run.c */
/* The outer parallel extent of c under dim values: rows, (mix) blocks of VM_MC rows by
 * VM_T columns, or (cols) items of VM_T columns of each kept row; *item: elements one
 * item covers. */
int64_t vm_extent(const VmCode *c, const int64_t *dims, int64_t *item);
/* Run items [begin, end) of kernel c: bufs are its inputs then outputs, dims its dim
 * parameters (the native kernel's ABI). */
void vm_exec(const VmCode *c, void *const *bufs, const int64_t *dims, int64_t begin, int64_t end);
/* The host ISA the interpreter runs ("avx512", "avx2", "sse2"), and its f32 lanes. */
const char *vm_isa(int *lanes);

#endif /* DVM_VM_H */
