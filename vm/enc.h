/* vm/enc.h — the bytecode encoder's private map: its state (Enc), instructions on virtual
 * registers (TIns, VReg), scalars (Sv) and indices (Ix), and the functions one of its files
 * calls in another. Only vm/ includes it.
 *
 * The encoder walks a lowered kernel the way the native emitter does (jit/cg.h), one file
 * per part:
 *   encode.c  instructions, the constant pool, programs, the peephole, registers
 *   eval.c    dims, positions, buffer bases, views as index programs, the lowered
 *             programs' entries (KnProg)
 *   shapes.c  passes, stores, the mix kernel, vm_encode
 *   disasm.c  the disassembly */
#ifndef DVM_VM_ENC_H
#define DVM_VM_ENC_H

#include "vm.h"

enum { NF = 7 }; /* fields of an instruction: d, a, b, imm, and imm's packed registers (p) */

/* An instruction with virtual registers, before allocation. */
typedef struct TIns {
  uint8_t op;
  int32_t f[NF]; /* d, a, b, imm, p0, p1, p2 (-1: none) */
} TIns;

typedef struct VReg {
  bool wide;
  int16_t phys;   /* -1 until allocated */
  bool fixed;     /* a slot or the product: allocated for the whole kernel */
  uint32_t last;  /* last use in the current program */
  uint32_t uses;  /* reads in the current program (fuse) */
  int32_t def;    /* its defining instruction in the current program, -1 */
} VReg;

/* A scalar: its register, and its value when known while encoding. */
typedef struct Sv {
  int reg;
  bool isc;
  int64_t c;
} Sv;

/* An index (jit/views.c's Ix): s + k·(j + lane), or an index tile. */
typedef struct Ix {
  Sv s;
  int64_t k;
  int v; /* vreg of an i64 tile, or -1 */
} Ix;

/* The arrays vm_encode's vectors start in (vec_push_from): a kernel of the usual size
 * allocates nothing while it is encoded, and its code, constants, passes, bases and dims
 * are then packed into one block (VmCode.arrays). */
typedef struct EncFew {
  TIns tmp[64];
  VReg vr[64];
  VmIns code[128];
  int64_t pool[32];
  VmPass pass[8];
  VmBase base[16];
  VmDim dimtab[16];
} EncFew;

typedef struct Enc {
  const KnKernel *kk;   /* the lowered kernel: the only thing the encoder reads */
  VmCode *c;
  VEC(TIns) tmp;        /* the current program */
  VEC(VmIns) code;
  VEC(int64_t) pool;
  VEC(VmPass) pass;
  VEC(VmBase) base;
  VEC(VmDim) dimtab;    /* the domain's dims, position by position, then the others once each */
  VEC(VReg) vr;
  EncFew *few;          /* vm_encode's arrays every vector starts in */
  int *memo;            /* per member (kn_member): vreg in the current program, -1 */
  int *inmemo;          /* per input and alignment: its load, -1 */
  const KnProg *prog;   /* the program being run (enc_begin), ... */
  uint32_t at;          /* ... its next entry, ... */
  KnReads rd;           /* ... its leaf reads no member has taken yet, ... */
  int *reads;           /* ... and per read its vreg (-1: not materialized yet) */
  int *red, *n1, *n2;   /* per member: slot vregs, -1 */
  int mm;               /* the product's vreg, -1 */
  uint64_t fixed_regs;  /* physical registers taken by fixed vregs (VM_MAXREG bits) */
  int ns;               /* scalar registers used */
  int r;                /* the domain's rank (kk->r) */
  int ctx;              /* the alignment of the value being evaluated (KnVal.ctx) */
  int stash_member;     /* rows: the softmax whose exp(x - max) row the sum pass keeps in ... */
  uint32_t stash_buf;   /* ... this full-shaped output (jit/rows.c's stash), or -1 */
  int stash_reg;        /* its base register */
  int mask;             /* concat: the lanes that may be read (a bool vreg), -1 */
  bool guarded;
  bool failed;
  char *why;            /* the first failure's reason, into the caller's buffer ... */
  size_t nwhy;          /* ... of this size */
} Enc;

extern const char *const enc_op_fmt[VM_NOPS];

/* encode.c */
void enc_fail(Enc *e, const char *fmt, const char *what);
int32_t enc_pool_add(Enc *e, int64_t v);
int32_t enc_pool_f(Enc *e, float f);
int enc_constf(Enc *e, float f);
/* End the current program: registers by liveness, then the instructions appended to the
 * code. keep: vregs whose registers must survive the program (its results). */
VmProg enc_end_prog(Enc *e, const int *keep, int nkeep);
/* A register for the whole kernel (a slot, the product). */
int enc_fixed_reg(Enc *e);

/* eval.c */
/* The dim table's entry for d (the first equal one, kn_dim_eq), added if there is none. */
int enc_dim_index(Enc *e, KnDim d);
Sv enc_sconst(Enc *e, int64_t c);
/* The position register of domain axis d. */
Sv enc_sidx(int d);
/* The base register of buffer `buf` (value number u) read in alignment ctx (jit/emit.c
 * cg_value_base); *inner: its stride along the lanes (0 or 1). */
int enc_base_reg(Enc *e, uint32_t buf, uint32_t u, int ctx, int *inner);
Ix enc_ix_s(Sv s);
VmOp enc_by_dtype(DType t, VmOp f32, VmOp i32, VmOp i64, VmOp b);
/* Value number u at positions P of its own index space (jit/views.c cg_view_at). */
int enc_view_at(Enc *e, uint32_t u, const Ix *P);
/* The value of value number u at the current tile: the current program's entries run up
 * to u's (jit/views.c cg_eval). Values the program does not evaluate fail the encoding. */
int enc_eval(Enc *e, uint32_t u);

/* The encoder's hottest helpers, inline here: each instruction, field and operand goes
 * through them, and out of line in the files that call them they cost a fifth of the
 * encode time. */
static inline int enc_newv(Enc *e, bool wide) {
  vec_push_from(e->vr, e->few->vr, ((VReg){wide, -1, false, 0, 0, -1}));
  return (int)e->vr.n - 1;
}

static inline int enc_news(Enc *e) {
  if (e->ns >= VM_MAXS) {
    enc_fail(e, "%s", "the kernel needs more than 256 scalar registers");
    return VM_MAXS - 1;
  }
  return e->ns++;
}

/* Append op with imm's packed registers p0..p2 (fmt p); a new destination if its first
 * field is a register it defines. */
static inline int enc_emit_p(Enc *e, VmOp op, int a, int b, int32_t imm, int p0, int p1, int p2) {
  const char *f = enc_op_fmt[op];
  bool store = op >= VM_ST_F32 && op <= VM_ST_BOOL;
  int d = -1;
  if (!store && (f[0] == 't' || f[0] == 'w')) d = enc_newv(e, f[0] == 'w');
  else if (f[0] == 's') d = enc_news(e);
  vec_push_from(e->tmp, e->few->tmp, ((TIns){(uint8_t)op, {d, a, b, imm, p0, p1, p2}}));
  return d;
}

static inline int enc_emit(Enc *e, VmOp op, int a, int b, int32_t imm) { return enc_emit_p(e, op, a, b, imm, -1, -1, -1); }

static inline void enc_store(Enc *e, VmOp op, int val, int sreg, uint32_t buf, int32_t k) {
  vec_push_from(e->tmp, e->few->tmp, ((TIns){(uint8_t)op, {val, sreg, (int32_t)buf, k, -1, -1, -1}}));
}

/* A fold instruction into the accumulators of slot acc (a fixed register). */
static inline void enc_fold(Enc *e, VmOp op, int acc, int a, int b, int32_t imm) {
  vec_push_from(e->tmp, e->few->tmp, ((TIns){(uint8_t)op, {acc, a, b, imm, -1, -1, -1}}));
}

/* The kind of field i of op (ops.def): d, a, b, imm, then imm's packed registers. */
static inline char enc_kind(VmOp op, int i) {
  const char *f = enc_op_fmt[op];
  return i < 4 ? f[i] : f[3] == 'p' ? f[i] : '-';
}

/* Start program p (NULL: none, views alone) with nothing evaluated. */
static inline void enc_begin(Enc *e, const KnProg *p) {
  for (uint32_t m = 0; m < e->kk->nmem; m++) e->memo[m] = -1;
  for (uint32_t i = 0; i < 2 * e->kk->nin; i++) e->inmemo[i] = -1;
  e->prog = p, e->at = 0, e->rd.n = e->rd.ready = 0;
}

#endif /* DVM_VM_ENC_H */
