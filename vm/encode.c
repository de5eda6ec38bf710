/* vm/encode.c — a fused Kernel to tile bytecode (vm/vm.h), and its disassembly.
 *
 * One walk over the kernel, shaped like the native emitter (jit/codegen.c): the members a
 * program needs are evaluated recursively with a memo per program (eval), views become
 * index programs on scalars (affine in the lanes: s + k·(j + t)) or on index tiles (view_at,
 * the index algebra of jit/views.c's Ix), and each program's virtual registers get physical
 * ones by liveness when the program ends (alloc_prog: a linear scan; a register is free
 * after its last use). Per-row results of reductions get reserved registers (slots).
 *
 * Coverage is the native tier's (kn_supported), so the two tiers run the same kernels,
 * less the ops whose vm column in kernel/cover.def gives a reason (declined with it
 * first); a kernel over the VM's limits (registers, scalars, buffers) is declined with the
 * reason.
 *
 * Each program gets a peephole before allocation (fuse: MUL then ADD -> MULADD) and a
 * check whether it may run over whole rows (span_ok, VmProg.whole).
 *
 * Why one file of ~1150 lines (past 800 on purpose): it is one walk mirroring the native emitter (jit/cg.h)
 * section by section (views, elementwise, passes, kernel shapes, disassembly), and the
 * sections share the encoder's state (Enc); split, each part would need that state made
 * public. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vm.h"

static const char *const op_names[VM_NOPS] = {
#define VMOP(id, fmt) #id,
#include "ops.def"
#undef VMOP
};
static const char *const op_fmt[VM_NOPS] = {
#define VMOP(id, fmt) fmt,
#include "ops.def"
#undef VMOP
};

const char *vm_op_name(VmOp op) { return op < VM_NOPS ? op_names[op] : "?"; }

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

typedef struct Enc {
  const KnKernel *kk;   /* the lowered kernel: each member's instruction */
  const Partition *p;
  const Graph *g;
  const Kernel *k;
  VmCode *c;
  VEC(TIns) tmp;        /* the current program */
  VEC(VmIns) code;
  VEC(int64_t) pool;
  VEC(VmPass) pass;
  VEC(VmBase) base;
  VEC(VmDim) dimtab;
  VEC(Dim) dimid;       /* dimtab's Dims */
  VEC(VReg) vr;
  int *memo;            /* per member: vreg in the current program, -1 */
  int *inmemo;          /* per input and alignment: its load, -1 */
  int *red, *n1, *n2;   /* per member: slot vregs, -1 */
  int mm;               /* the product's vreg, -1 */
  uint32_t fixed_regs;  /* physical registers taken by fixed vregs */
  int ns;               /* scalar registers used */
  int r, rr;
  uint32_t axes;
  const Dim *dom;
  int ctx;
  int stash_member;     /* rows: the softmax whose exp(x - max) row the sum pass keeps in ... */
  uint32_t stash_buf;   /* ... this full-shaped output (jit/rows.c's stash), or -1 */
  int stash_reg;        /* its base register */
  int mask;             /* concat: the lanes that may be read (a bool vreg), -1 */
  bool guarded;
  bool failed;
  char why[200];
} Enc;

static void fail(Enc *e, const char *fmt, const char *what) {
  if (!e->failed) snprintf(e->why, sizeof e->why, fmt, what);
  e->failed = true;
}

/* ---- emitting ------------------------------------------------------------------------------ */

static int newv(Enc *e, bool wide) {
  vec_push(e->vr, ((VReg){wide, -1, false, 0, 0, -1}));
  return (int)e->vr.n - 1;
}

static int news(Enc *e) {
  if (e->ns >= VM_MAXS) {
    fail(e, "%s", "the kernel needs more than 256 scalar registers");
    return VM_MAXS - 1;
  }
  return e->ns++;
}

/* Append op with imm's packed registers p0..p2 (fmt p); a new destination if its first
 * field is a register it defines. */
static int emit_p(Enc *e, VmOp op, int a, int b, int32_t imm, int p0, int p1, int p2) {
  const char *f = op_fmt[op];
  bool store = op >= VM_ST_F32 && op <= VM_ST_BOOL;
  int d = -1;
  if (!store && (f[0] == 't' || f[0] == 'w')) d = newv(e, f[0] == 'w');
  else if (f[0] == 's') d = news(e);
  vec_push(e->tmp, ((TIns){(uint8_t)op, {d, a, b, imm, p0, p1, p2}}));
  return d;
}

static int emit(Enc *e, VmOp op, int a, int b, int32_t imm) { return emit_p(e, op, a, b, imm, -1, -1, -1); }

static void store(Enc *e, VmOp op, int val, int sreg, uint32_t buf, int32_t k) {
  vec_push(e->tmp, ((TIns){(uint8_t)op, {val, sreg, (int32_t)buf, k, -1, -1, -1}}));
}

/* A fold instruction into the accumulators of slot acc (a fixed register). */
static void fold(Enc *e, VmOp op, int acc, int a, int b, int32_t imm) {
  vec_push(e->tmp, ((TIns){(uint8_t)op, {acc, a, b, imm, -1, -1, -1}}));
}

static int32_t pool_add(Enc *e, int64_t v) {
  for (uint32_t i = 0; i < e->pool.n; i++)
    if (e->pool.v[i] == v) return (int32_t)i;
  vec_push(e->pool, v);
  return (int32_t)e->pool.n - 1;
}

static int32_t pool_f(Enc *e, float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  return pool_add(e, bits);
}

static int constf(Enc *e, float f) { return emit(e, VM_K_F32, 0, 0, pool_f(e, f)); }

/* The kind of field i of op (ops.def): d, a, b, imm, then imm's packed registers. */
static char kind(VmOp op, int i) {
  const char *f = op_fmt[op];
  return i < 4 ? f[i] : f[3] == 'p' ? f[i] : '-';
}

/* Is field i of op a tile register (t, w, u or f)? */
static bool tile_field(VmOp op, int i) {
  char f = kind(op, i);
  return f == 't' || f == 'w' || f == 'u' || f == 'f';
}

/* Can program pr run over spans of a row (VmProg.whole)? Every tile it reads names a
 * buffer's row — a contiguous f32 load, or a result written in place because a contiguous
 * store of it follows (WF in exec.inc) — or is read as one value (u); every tile it
 * writes is such a result or a fold's accumulators. The f32 arithmetic ops, NEG to
 * FOLDEXP in ops.def, read and write f32 tiles over whole vectors only. */
static bool span_ok(const Enc *e, VmProg pr) {
  uint64_t named = 0; /* a bit per physical register */
  for (uint32_t i = pr.start; i + 1 < pr.start + pr.n; i++) {
    const VmIns *in = &e->code.v[i];
    VmOp op = (VmOp)in->op;
    if (op_fmt[op][0] == 's') continue; /* scalars */
    if (op == VM_LD_F32 && in->imm == 1) {
      named |= 1ull << in->d;
      continue;
    }
    if (op == VM_ST_F32 && in->imm == 1 && (named >> in->d & 1)) continue;
    if (op != VM_K_F32 && (op < VM_NEG || op > VM_FOLDEXP)) return false;
    int32_t fld[NF] = {in->d, in->a, in->b, in->imm, in->imm & 0xff, in->imm >> 8 & 0xff, in->imm >> 16 & 0xff};
    for (int f = 1; f < NF; f++)
      if (kind(op, f) == 't' && !(named >> fld[f] & 1)) return false;
    if (kind(op, 0) == 't') {
      const VmIns *nx = in + 1;
      if (nx->op != VM_ST_F32 || nx->d != in->d || nx->imm != 1) return false;
      named |= 1ull << in->d;
    }
  }
  return true;
}

/* A peephole over the current program: an f32 ADD whose first operand is a MUL's result
 * that nothing else reads becomes one MULADD (a·b + c, the same two roundings in the same
 * order, and one tile fewer written and read: W1's x·a + b). */
static void fuse(Enc *e, const int *keep, int nkeep) {
  TIns *t = e->tmp.v;
  uint32_t n = e->tmp.n, dead = 0;
  for (uint32_t i = 0; i < n; i++)
    for (int f = 0; f < NF; f++)
      if (tile_field((VmOp)t[i].op, f) && t[i].f[f] >= 0) e->vr.v[t[i].f[f]].uses = 0, e->vr.v[t[i].f[f]].def = -1;
  for (uint32_t i = 0; i < n; i++) {
    VmOp op = (VmOp)t[i].op;
    bool writes = kind(op, 0) == 't' && !(op >= VM_ST_F32 && op <= VM_ST_BOOL);
    for (int f = 0; f < NF; f++) {
      int v = t[i].f[f];
      if (!tile_field(op, f) || v < 0) continue;
      if (f == 0 && writes) e->vr.v[v].def = (int32_t)i;
      else e->vr.v[v].uses++;
    }
  }
  for (int i = 0; i < nkeep; i++)
    if (keep[i] >= 0) e->vr.v[keep[i]].uses++;
  for (uint32_t i = 0; i < n; i++) {
    int x = t[i].f[1];
    if (t[i].op != VM_ADD || x < 0 || e->vr.v[x].def < 0 || e->vr.v[x].uses != 1) continue;
    TIns *m = &t[e->vr.v[x].def];
    if (m->op != VM_MUL || e->vr.v[x].fixed) continue;
    t[i] = (TIns){VM_MULADD, {t[i].f[0], m->f[1], m->f[2], t[i].f[2], -1, -1, -1}};
    m->op = VM_NOPS, dead++; /* removed below */
  }
  if (!dead) return;
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++)
    if (t[i].op != VM_NOPS) t[k++] = t[i];
  e->tmp.n = k;
}

/* End the current program: registers by liveness, then the instructions appended to the
 * code. keep: vregs whose registers must survive the program (its results). */
static VmProg end_prog(Enc *e, const int *keep, int nkeep) {
  fuse(e, keep, nkeep);
  vec_push(e->tmp, ((TIns){VM_END, {0, 0, 0, 0, -1, -1, -1}}));
  uint32_t n = e->tmp.n;
  for (uint32_t i = 0; i < n; i++)
    for (int f = 0; f < NF; f++) {
      int v = e->tmp.v[i].f[f];
      if (tile_field((VmOp)e->tmp.v[i].op, f) && v >= 0) e->vr.v[v].last = i;
    }
  for (int i = 0; i < nkeep; i++)
    if (keep[i] >= 0) e->vr.v[keep[i]].last = UINT32_MAX;
  uint64_t used = e->fixed_regs; /* a bit per physical register */
  VmProg pr = {e->code.n, n, false};
  for (uint32_t i = 0; i < n; i++) {
    TIns *t = &e->tmp.v[i];
    VmOp op = (VmOp)t->op;
    bool store_op = op >= VM_ST_F32 && op <= VM_ST_BOOL;
    int d = t->f[0];
    if (tile_field(op, 0) && !store_op && d >= 0 && e->vr.v[d].phys < 0) {
      int w = e->vr.v[d].wide ? 2 : 1, got = -1;
      for (int r = 0; r + w <= VM_MAXREG && got < 0; r++)
        if (!(used >> r & 1) && (w == 1 || !(used >> (r + 1) & 1))) got = r;
      if (got < 0) {
        fail(e, "%s", "the kernel needs more than 64 tile registers");
        got = 0;
      }
      e->vr.v[d].phys = (int16_t)got;
      used |= (w == 2 ? 3ull : 1ull) << got;
      if ((uint32_t)(got + w) > e->c->nreg) e->c->nreg = (uint32_t)(got + w);
    }
    VmIns out = {op, 0, 0, 0, 0};
    int32_t fld[NF];
    for (int f = 0; f < NF; f++) {
      int v = t->f[f];
      fld[f] = tile_field(op, f) && v >= 0 ? e->vr.v[v].phys : v;
    }
    if (kind(op, 3) == 'p') /* three registers in imm's bytes, 0xff none */
      fld[3] = (fld[4] & 0xff) | (fld[5] & 0xff) << 8 | (fld[6] & 0xff) << 16;
    out.d = (uint8_t)fld[0], out.a = (uint8_t)fld[1], out.b = (uint8_t)fld[2], out.imm = fld[3];
    vec_push(e->code, out);
    /* registers whose last use this was (the destination too, if never read) */
    for (int f = 0; f < NF; f++) {
      int v = t->f[f];
      if (!tile_field(op, f) || v < 0 || e->vr.v[v].fixed || e->vr.v[v].last != i) continue;
      used &= ~((e->vr.v[v].wide ? 3ull : 1ull) << e->vr.v[v].phys);
    }
  }
  e->tmp.n = 0;
  pr.whole = span_ok(e, pr);
  return pr;
}

/* A register for the whole kernel (a slot, the product). */
static int fixed_reg(Enc *e) {
  int v = newv(e, false);
  for (int r = 0; r < VM_MAXREG; r++)
    if (!(e->fixed_regs >> r & 1)) {
      e->fixed_regs |= 1ull << r;
      e->vr.v[v].phys = (int16_t)r, e->vr.v[v].fixed = true;
      if ((uint32_t)r + 1 > e->c->nreg) e->c->nreg = (uint32_t)r + 1;
      return v;
    }
  fail(e, "%s", "the kernel needs more than 64 tile registers");
  return v;
}

static void forget(Enc *e) {
  for (uint32_t m = 0; m < e->k->nmembers; m++) e->memo[m] = -1;
  for (uint32_t i = 0; i < 2 * e->k->ninputs; i++) e->inmemo[i] = -1;
}

/* ---- dims and positions ------------------------------------------------------------------ */

static int dim_index(Enc *e, Dim d) {
  for (uint32_t i = 0; i < e->dimid.n; i++)
    if (e->dimid.v[i] == d) return (int)i;
  VmDim v = {0, -1};
  if (!ir_dim_is_const(e->g, d, &v.c))
    for (uint32_t q = 0; q < e->k->ndims; q++)
      if (e->p->dims.v[e->k->dims + q] == d) v.q = (int32_t)q;
  vec_push(e->dimtab, v);
  vec_push(e->dimid, d);
  return (int)e->dimtab.n - 1;
}

static Sv sconst(Enc *e, int64_t c) { return (Sv){emit(e, VM_SK, 0, 0, pool_add(e, c)), true, c}; }

static Sv sdim(Enc *e, Dim d) {
  int64_t c;
  if (ir_dim_is_const(e->g, d, &c)) return sconst(e, c);
  int q = e->dimtab.v[dim_index(e, d)].q;
  return (Sv){emit(e, VM_SDIM, 0, 0, q), false, 0};
}

static Sv sbin(Enc *e, VmOp op, Sv a, Sv b) {
  if (a.isc && b.isc) {
    uint64_t x = (uint64_t)a.c, y = (uint64_t)b.c;
    switch (op) {
    case VM_SADD: return sconst(e, (int64_t)(x + y));
    case VM_SSUB: return sconst(e, (int64_t)(x - y));
    case VM_SMUL: return sconst(e, (int64_t)(x * y));
    case VM_SDIV: if (b.c > 0) return sconst(e, a.c / b.c); break;
    case VM_SREM: if (b.c > 0) return sconst(e, a.c % b.c); break;
    default: break;
    }
  }
  if (op == VM_SADD && a.isc && a.c == 0) return b;
  if ((op == VM_SADD || op == VM_SSUB) && b.isc && b.c == 0) return a;
  if (op == VM_SMUL && b.isc && b.c == 1) return a;
  return (Sv){emit(e, op, a.reg, b.reg, 0), false, 0};
}

/* The position register of domain axis d. */
static Sv sidx(int d) { return (Sv){VS_IDX + d, false, 0}; }

/* The base register of buffer `buf` (value u) read in alignment ctx (jit/views.c
 * value_base); *inner: its stride along the lanes (0 or 1). */
static int base_reg(Enc *e, uint32_t buf, uint32_t u, int ctx, int *inner) {
  const Node *n = ir_node(e->g, u);
  const Dim *s = ir_shape(e->g, u);
  VmBase b = {.buf = buf, .rank = n->rank};
  *inner = 0;
  for (int t = 0; t < n->rank; t++) {
    int dk;
    if (!ctx) {
      dk = t + (e->r - n->rank);
    } else {
      int pos = t + (e->rr - n->rank);
      dk = -1;
      for (int d = 0; d < e->r; d++)
        if (!(e->axes >> d & 1) && pos-- == 0) {
          dk = d;
          break;
        }
    }
    int64_t one;
    bool bcast = dk < 0 || (ir_dim_is_const(e->g, s[t], &one) && one == 1 && s[t] != e->dom[dk]);
    b.axis[t] = (int8_t)(bcast ? -1 : dk);
    b.dim[t] = (uint16_t)dim_index(e, s[t]);
    if (!bcast && dk == e->r - 1) *inner = 1;
  }
  for (uint32_t i = 0; i < e->base.n; i++) {
    const VmBase *o = &e->base.v[i];
    if (o->buf == buf && o->rank == b.rank && !memcmp(o->axis, b.axis, sizeof b.axis) &&
        !memcmp(o->dim, b.dim, sizeof b.dim))
      return o->reg;
  }
  b.reg = (uint8_t)news(e);
  vec_push(e->base, b);
  return b.reg;
}

/* ---- views: index maps (jit/views.c view_at) ------------------------------------------------ */

static Ix ix_s(Sv s) { return (Ix){s, 0, -1}; }

static int ix_vec(Enc *e, Ix a) {
  if (a.v >= 0) return a.v;
  return emit(e, VM_XAFF, a.s.reg, 0, (int32_t)a.k);
}

static Ix ix_add(Enc *e, Ix a, Ix b) {
  if (a.v < 0 && b.v < 0) return (Ix){sbin(e, VM_SADD, a.s, b.s), a.k + b.k, -1};
  if (b.v < 0 && b.k == 0) return (Ix){a.s, 0, emit(e, VM_XADDS, a.v, b.s.reg, 0)};
  if (a.v < 0 && a.k == 0) return (Ix){b.s, 0, emit(e, VM_XADDS, b.v, a.s.reg, 0)};
  return (Ix){a.s, 0, emit(e, VM_XADD, ix_vec(e, a), ix_vec(e, b), 0)};
}

static Ix ix_mul(Enc *e, Ix a, Sv m) {
  if (a.v < 0 && (!a.k || m.isc)) return (Ix){sbin(e, VM_SMUL, a.s, m), a.k ? a.k * m.c : 0, -1};
  return (Ix){a.s, 0, emit(e, VM_XMULS, ix_vec(e, a), m.reg, 0)};
}

static void ix_divmod(Enc *e, Ix a, Sv m, Ix *q, Ix *r) {
  if (a.v < 0 && !a.k) {
    *q = ix_s(sbin(e, VM_SDIV, a.s, m)), *r = ix_s(sbin(e, VM_SREM, a.s, m));
    return;
  }
  if (a.v < 0 && m.isc && m.c == 1) {
    *q = a, *r = ix_s(sconst(e, 0));
    return;
  }
  int v = ix_vec(e, a);
  *q = (Ix){a.s, 0, emit(e, VM_XDIVS, v, m.reg, 0)};
  *r = (Ix){a.s, 0, emit(e, VM_XREMS, v, m.reg, 0)};
}

static Ix linearize(Enc *e, uint32_t u, const Ix *P) {
  const Node *n = ir_node(e->g, u);
  const Dim *sh = ir_shape(e->g, u);
  Ix l = ix_s(sconst(e, 0));
  Sv stride = sconst(e, 1);
  for (int t = n->rank - 1; t >= 0; t--) {
    l = ix_add(e, l, ix_mul(e, P[t], stride));
    if (t) stride = sbin(e, VM_SMUL, stride, sdim(e, sh[t]));
  }
  return l;
}

static int input_index(const Enc *e, uint32_t u) {
  for (uint32_t i = 0; i < e->k->ninputs; i++)
    if (fu_inputs(e->p, e->k)[i] == u) return (int)i;
  return -1;
}

static int member_index(const Enc *e, uint32_t u) {
  for (uint32_t i = 0; i < e->k->nmembers; i++)
    if (fu_members(e->p, e->k)[i] == u) return (int)i;
  return -1;
}

static VmOp by_dtype(DType t, VmOp f32, VmOp i32, VmOp i64, VmOp b) {
  return t == DT_I64 ? i64 : t == DT_I32 ? i32 : t == DT_BOOL ? b : f32;
}

/* Input i's lanes at element offset off. */
static int load_at(Enc *e, int i, Ix off) {
  DType dt = (DType)ir_node(e->g, fu_inputs(e->p, e->k)[i])->dtype;
  if (off.v < 0 && !e->guarded)
    return emit(e, by_dtype(dt, VM_LD_F32, VM_LD_I32, VM_LD_I64, VM_LD_BOOL), off.s.reg, i, (int32_t)off.k);
  return emit(e, by_dtype(dt, VM_GA_F32, VM_GA_I32, VM_GA_I64, VM_GA_BOOL), ix_vec(e, off), i, e->mask);
}

static int lit(Enc *e, uint32_t u) {
  const KnConst *k = kn_const(e->kk, u);
  DType t = (DType)k->t;
  if (t == DT_BOOL) return emit(e, VM_K_I32, 0, 0, pool_add(e, k->i != 0));
  if (t == DT_I32) return emit(e, VM_K_I32, 0, 0, pool_add(e, (int32_t)(uint32_t)k->i));
  if (t == DT_I64) return emit(e, VM_K_I64, 0, 0, pool_add(e, k->i));
  return constf(e, k->f);
}

static int view_at(Enc *e, uint32_t u, const Ix *P) {
  const Graph *g = e->g;
  int m = member_index(e, u);
  const KnIns *in = m >= 0 ? &e->kk->ins[m] : NULL;
  const KnView *w = in ? in->view : NULL;
  Ix Q[DVM_MAX_RANK];
  if (!w) { /* a literal, or a kernel input */
    if (kn_const(e->kk, u)) return lit(e, u);
    int i = input_index(e, u);
    if (i < 0) {
      fail(e, "%s", "a view reads a value computed in the kernel");
      return constf(e, 0);
    }
    return load_at(e, i, linearize(e, u, P));
  }
  int rank = ir_node(g, u)->rank;
  switch ((KnViewKind)w->kind) {
  case KV_FULL: return lit(e, u);
  case KV_ARANGE: {
    int x = ix_vec(e, P[0]);
    if (in->t == DT_I64) return x;
    return emit(e, in->t == DT_I32 ? VM_L2I : VM_L2F, x, 0, 0);
  }
  case KV_TRANSPOSE: {
    uint32_t x = ir_operand(g, u, 0);
    for (int k = 0; k < w->n; k++) Q[w->map[k]] = P[k];
    return view_at(e, x, Q);
  }
  case KV_BROADCAST: {
    uint32_t x = ir_operand(g, u, 0);
    for (int t = 0; t < w->n; t++) Q[t] = w->map[t] < 0 ? ix_s(sconst(e, 0)) : P[w->map[t]];
    return view_at(e, x, Q);
  }
  case KV_SLICE: {
    uint32_t x = ir_operand(g, u, 0);
    for (int d = 0; d < rank; d++) Q[d] = P[d];
    for (uint32_t i = 0; i < w->n; i++) {
      int a = w->saxis[i];
      int64_t step = w->step[i];
      Sv d = sdim(e, w->size[i]), v = sdim(e, w->start[i]);
      Sv start = {emit(e, VM_SSLICE, v.reg, d.reg, step > 0 ? 1 : -1), false, 0};
      Q[a] = ix_add(e, ix_s(start), ix_mul(e, P[a], sconst(e, step)));
    }
    return view_at(e, x, Q);
  }
  case KV_CONCAT: {
    int a = w->axis;
    bool wide = in->t == DT_I64;
    Sv off = sconst(e, 0);
    int res = -1, mask0 = e->mask;
    bool guarded0 = e->guarded;
    int at = ix_vec(e, P[a]);
    for (uint32_t q = 0; q < w->n; q++) {
      uint32_t x = ir_operand(g, u, q);
      Sv end = sbin(e, VM_SADD, off, sdim(e, w->csize[q]));
      int in = emit(e, VM_XIN, at, off.reg, end.reg);
      for (int d = 0; d < rank; d++) Q[d] = P[d];
      Q[a] = ix_add(e, P[a], ix_s(sbin(e, VM_SSUB, sconst(e, 0), off)));
      e->mask = mask0 >= 0 ? emit(e, VM_AND, mask0, in, 0) : in, e->guarded = true;
      int val = view_at(e, x, Q);
      res = res >= 0 ? emit(e, wide ? VM_SELW : VM_SEL, in, val, res) : val;
      off = end;
    }
    e->mask = mask0, e->guarded = guarded0;
    return res;
  }
  case KV_GATHER: { /* jit/views.c view_at: indices read from a buffer the runtime checked */
    uint32_t x = ir_operand(g, u, 0), iv = ir_operand(g, u, 1);
    int xr = ir_node(g, x)->rank, ir = ir_node(g, iv)->rank;
    int a = w->axis;
    Ix Pi[DVM_MAX_RANK];
    for (int t = 0; t < ir; t++) Pi[t] = P[a + t];
    int at = view_at(e, iv, Pi);
    if (ir_node(g, iv)->dtype == DT_I32) at = emit(e, VM_I2L, at, 0, 0);
    at = emit(e, VM_XWRAP, at, sdim(e, w->size[0]).reg, 0);
    for (int t = 0; t < a; t++) Q[t] = P[t];
    Q[a] = (Ix){sconst(e, 0), 0, at};
    for (int t = a + 1; t < xr; t++) Q[t] = P[t + ir - 1];
    return view_at(e, x, Q);
  }
  default: { /* KV_RESHAPE */
    uint32_t x = ir_operand(g, u, 0);
    Ix l = linearize(e, u, P);
    if (input_index(e, x) >= 0) return load_at(e, input_index(e, x), l);
    for (int t = w->n - 1; t >= 0; t--) {
      if (t == 0) {
        Q[0] = l;
        break;
      }
      ix_divmod(e, l, sdim(e, w->size[t]), &l, &Q[t]);
    }
    return view_at(e, x, Q);
  }
  }
}

/* The domain axis dim t of a rank-n value lines up with in alignment ctx, -1 if none. */
static int domain_axis(const Enc *e, int n, int t, int ctx) {
  if (!ctx) return t + (e->r - n);
  int pos = t + (e->rr - n);
  for (int d = 0; d < e->r; d++)
    if (!(e->axes >> d & 1) && pos-- == 0) return d;
  return -1;
}

static int view_here(Enc *e, uint32_t u) {
  const Node *n = ir_node(e->g, u);
  Ix P[DVM_MAX_RANK];
  for (int t = 0; t < n->rank; t++) {
    int dk = domain_axis(e, n->rank, t, e->ctx);
    int64_t one;
    bool b = dk < 0 || (ir_dim_is_const(e->g, ir_shape(e->g, u)[t], &one) && one == 1 &&
                        ir_shape(e->g, u)[t] != e->dom[dk]);
    P[t] = b ? ix_s(sconst(e, 0)) : dk == e->r - 1 ? (Ix){sconst(e, 0), 1, -1} : ix_s(sidx(dk));
  }
  return view_at(e, u, P);
}

/* ---- members ---------------------------------------------------------------------------- */

static int eval(Enc *e, uint32_t u);

static int operand(Enc *e, uint32_t v, uint32_t i) { return eval(e, ir_operand(e->g, v, i)); }

static int load_input(Enc *e, int i) {
  if (e->inmemo[2 * i + e->ctx] >= 0) return e->inmemo[2 * i + e->ctx];
  uint32_t u = fu_inputs(e->p, e->k)[i];
  int inner, s = base_reg(e, (uint32_t)i, u, e->ctx, &inner);
  DType dt = (DType)ir_node(e->g, u)->dtype;
  int x = emit(e, by_dtype(dt, VM_LD_F32, VM_LD_I32, VM_LD_I64, VM_LD_BOOL), s, i, inner);
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
  return emit(e, op, x, 0, 0);
}

/* Member v's elementwise instruction in. */
static int elementwise(Enc *e, uint32_t v, const KnIns *in) {
  DType t = (DType)in->t, a = (DType)in->a;
  int ar = kn_op_arity((KnOp)in->op);
  int x = operand(e, v, 0), y = ar >= 2 ? operand(e, v, 1) : -1;
  switch (in->op) {
  case KO_EQ: case KO_NE: case KO_LT: case KO_LE: case KO_GT: case KO_GE: {
    int d = in->op - KO_EQ;
    VmOp base = a == DT_F32 ? VM_FEQ : a == DT_I64 ? VM_LEQ : VM_IEQ; /* bool: 0/1 as i32 */
    return emit(e, (VmOp)(base + d), x, y, 0);
  }
  case KO_AND: return emit(e, VM_AND, x, y, 0);
  case KO_OR: return emit(e, VM_OR, x, y, 0);
  case KO_NOT: return emit(e, VM_NOT, x, 0, 0);
  case KO_SELECT: return emit(e, t == DT_I64 ? VM_SELW : VM_SEL, x, y, operand(e, v, 2));
  case KO_CAST: return cast(e, x, a, t);
  default: break;
  }
  if (t == DT_I32 || t == DT_I64) {
    bool w = t == DT_I64;
    switch (in->op) {
    case KO_NEG: return emit(e, w ? VM_LNEG : VM_INEG, x, 0, 0);
    case KO_ABS: return emit(e, w ? VM_LABS : VM_IABS, x, 0, 0);
    case KO_RELU: return emit(e, w ? VM_LRELU : VM_IRELU, x, 0, 0);
    case KO_SIGN: return emit(e, w ? VM_LSIGN : VM_ISIGN, x, 0, 0);
    case KO_ADD: return emit(e, w ? VM_LADD : VM_IADD, x, y, 0);
    case KO_SUB: return emit(e, w ? VM_LSUB : VM_ISUB, x, y, 0);
    case KO_MUL: return emit(e, w ? VM_LMUL : VM_IMUL, x, y, 0);
    case KO_MAX: return emit(e, w ? VM_LMAX : VM_IMAX, x, y, 0);
    case KO_MIN: return emit(e, w ? VM_LMIN : VM_IMIN, x, y, 0);
    default: fail(e, "%s is not encoded for integers", kn_op_name((KnOp)in->op)); return x;
    }
  }
  switch (in->op) {
  case KO_NEG: return emit(e, VM_NEG, x, 0, 0);
  case KO_ABS: return emit(e, VM_ABS, x, 0, 0);
  case KO_EXP: return emit(e, VM_EXP, x, 0, 0);
  case KO_LOG: return emit(e, VM_LOG, x, 0, 0);
  case KO_SQRT: return emit(e, VM_SQRT, x, 0, 0);
  case KO_RSQRT: return emit(e, VM_RSQRT, x, 0, 0);
  case KO_RECIP: return emit(e, VM_RECIP, x, 0, 0);
  case KO_TANH: return emit(e, VM_TANH, x, 0, 0);
  case KO_SIGMOID: return emit(e, VM_SIGMOID, x, 0, 0);
  case KO_RELU: return emit(e, VM_RELU, x, 0, 0);
  case KO_GELU: return emit(e, VM_GELU, x, 0, 0);
  case KO_GELU_TANH: return emit(e, VM_GELU_TANH, x, 0, 0);
  case KO_SILU: return emit(e, VM_SILU, x, 0, 0);
  case KO_ERF: return emit(e, VM_ERF, x, 0, 0);
  case KO_SIN: return emit(e, VM_SIN, x, 0, 0);
  case KO_COS: return emit(e, VM_COS, x, 0, 0);
  case KO_FLOOR: return emit(e, VM_FLOOR, x, 0, 0);
  case KO_CEIL: return emit(e, VM_CEIL, x, 0, 0);
  case KO_ROUND: return emit(e, VM_ROUND, x, 0, 0);
  case KO_SIGN: return emit(e, VM_SIGN, x, 0, 0);
  case KO_ADD: return emit(e, VM_ADD, x, y, 0);
  case KO_SUB: return emit(e, VM_SUB, x, y, 0);
  case KO_MUL: return emit(e, VM_MUL, x, y, 0);
  case KO_DIV: return emit(e, VM_DIV, x, y, 0);
  case KO_POW: return emit(e, VM_POW, x, y, 0);
  case KO_MAX: return emit(e, VM_MAX, x, y, 0);
  case KO_MIN: return emit(e, VM_MIN, x, y, 0);
  case KO_CLIP:
    if (in->lo) x = emit(e, VM_MAXK, x, 0, pool_f(e, (float)in->flo));
    if (in->hi) x = emit(e, VM_MINK, x, 0, pool_f(e, (float)in->fhi));
    return x;
  default: fail(e, "%s is not encoded", kn_op_name((KnOp)in->op)); return x;
  }
}

/* The value of u at the current tile (jit/views.c eval). */
static int eval(Enc *e, uint32_t u) {
  int m = member_index(e, u);
  if (m < 0 && kn_const(e->kk, u)) return lit(e, u); /* a literal operand */
  if (m < 0) return load_input(e, input_index(e, u));
  if (e->red[m] >= 0) return e->red[m];
  if (e->memo[m] >= 0) return e->memo[m];
  const KnIns *in = &e->kk->ins[m];
  int saved = e->ctx, r, x;
  bool rows = e->c->mode == VMM_ROWS;
  e->ctx = e->axes && ir_node(e->g, u)->rank == e->rr && e->rr < e->r;
  switch (in->op) {
  case KO_PRODUCT: r = e->mm; break;
  case KO_VIEW: r = view_here(e, u); break;
  /* rows: one instruction reading the per-row values once (u); cols: per-column tiles */
  case KO_SOFTMAX: /* exp(x - max), or the row the sum pass kept, times 1 / sum */
    if (m == e->stash_member) {
      x = emit(e, VM_LD_F32, e->stash_reg, (int)e->stash_buf, 1);
      r = emit(e, VM_MULU, x, e->n2[m], 0);
    } else if (rows) {
      r = emit(e, VM_SOFTMAXU, operand(e, u, 0), e->n1[m], e->n2[m]);
    } else {
      r = emit(e, VM_MUL, emit(e, VM_SUBEXP, operand(e, u, 0), e->n1[m], 0), e->n2[m], 0);
    }
    break;
  case KO_LOG_SOFTMAX: r = emit(e, rows ? VM_SUBU : VM_SUB, operand(e, u, 0), e->n2[m], 0); break;
  case KO_LAYERNORM: /* ((x - mean)·rstd)·gamma + beta */
    x = operand(e, u, 0);
    if (rows) {
      int gamma = operand(e, u, 1), beta = operand(e, u, 2);
      r = emit_p(e, VM_LNORMU, x, e->n1[m], 0, e->n2[m], gamma, beta);
    } else {
      x = emit(e, VM_SUBMUL, x, e->n1[m], e->n2[m]);
      r = operand(e, u, 1);
      r = emit(e, VM_MULADD, x, r, operand(e, u, 2));
    }
    break;
  case KO_RMSNORM: /* (x·rstd)·gamma */
    x = operand(e, u, 0);
    if (rows) r = emit(e, VM_RMSNORMU, x, e->n2[m], operand(e, u, 1));
    else r = emit(e, VM_MUL, emit(e, VM_MUL, x, e->n2[m], 0), operand(e, u, 1), 0);
    break;
  default: r = elementwise(e, u, in);
  }
  e->ctx = saved;
  return e->memo[m] = r;
}

/* ---- programs ----------------------------------------------------------------------------- */

/* What a pass folds: the kernel layer's quantities (W_*), and the VM's x - s of its
 * one-pass layernorm (FOLDSH). */
enum { Q_VALUE = W_VALUE, Q_EXP_SHIFTED = W_EXP_SHIFTED, Q_SQ_CENTERED = W_SQ_CENTERED, Q_SQ = W_SQ, Q_SHIFTED = W_ARGMAX + 1 };

/* A pass folding a quantity of value x into slot `slot`: rows, by a fold instruction into
 * the slot's accumulators; cols, by the driver from the program's result. */
static void add_pass(Enc *e, VmFold f, uint32_t x, int what, int m, VmPost post, int slot, int aux, float eps) {
  forget(e);
  int v = eval(e, x);
  VmPass ps = {.fold = (uint8_t)f, .post = (uint8_t)post, .eps = eps};
  ps.slot = (uint8_t)e->vr.v[slot].phys;
  ps.aux = aux >= 0 ? (uint8_t)e->vr.v[aux].phys : 0;
  if (e->c->mode == VMM_ROWS) {
    if (what == Q_EXP_SHIFTED && m == e->stash_member) { /* exp(x - max) kept for the output pass */
      v = emit(e, VM_SUBEXPU, v, e->n1[m], 0);
      store(e, VM_ST_F32, v, e->stash_reg, e->stash_buf, 1);
      fold(e, VM_FOLD, slot, v, -1, VMF_SUM);
    } else if (what == Q_EXP_SHIFTED) {
      fold(e, VM_FOLDEXP, slot, v, e->n1[m], 0);
    } else if (what == Q_SQ) {
      fold(e, VM_FOLDSQ, slot, v, -1, 0);
    } else if (what == Q_SHIFTED) {
      fold(e, VM_FOLDSH, slot, v, -1, 0);
    } else {
      fold(e, VM_FOLD, slot, v, -1, f);
    }
    ps.prog = end_prog(e, NULL, 0);
    ps.src = ps.slot;
    vec_push(e->pass, ps);
    return;
  }
  if (what == Q_EXP_SHIFTED) {
    v = emit(e, VM_SUBEXP, v, e->n1[m], 0);
    if (m == e->stash_member) store(e, VM_ST_F32, v, e->stash_reg, e->stash_buf, 1); /* kept for the output pass */
  } else if (what == Q_SQ_CENTERED) {
    v = emit(e, VM_SQDEV, v, e->n1[m], 0);
  } else if (what == Q_SQ) {
    v = emit(e, VM_MUL, v, v, 0);
  }
  ps.prog = end_prog(e, &v, 1);
  ps.src = (uint8_t)e->vr.v[v].phys;
  vec_push(e->pass, ps);
}

static void passes(Enc *e) {
  for (uint32_t m = 0; m < e->k->nmembers; m++) {
    uint32_t v = fu_members(e->p, e->k)[m], x = ir_node(e->g, v)->nin ? ir_operand(e->g, v, 0) : 0;
    const KnIns *in = &e->kk->ins[m];
    const KnPass *ps = in->pass;
    float eps = (float)in->eps;
    int n2;
    switch (in->op) {
    case KO_FOLDED: {
      static const char *const names[] = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod"};
      if (ps[0].what == W_ARGMAX) { /* declined by the op table before (kk->vm_why) */
        fail(e, "%s is not encoded (no fold of (value, index) pairs)", "argmax");
        break;
      }
      if (in->t != DT_F32) {
        fail(e, "%s of integers is not encoded (folds are f32)", ps[0].post == KP_MEAN ? "reduce_mean" : names[ps[0].f]);
        break;
      }
      int slot = fixed_reg(e);
      add_pass(e, (VmFold)ps[0].f, x, ps[0].what, (int)m, (VmPost)ps[0].post, slot, -1, 0);
      e->red[m] = slot;
      break;
    }
    case KO_SOFTMAX: case KO_LOG_SOFTMAX: /* n1: the max; n2: 1 / sum, or max + log sum */
      e->n1[m] = fixed_reg(e);
      add_pass(e, (VmFold)ps[0].f, x, ps[0].what, (int)m, (VmPost)ps[0].post, e->n1[m], -1, 0);
      n2 = fixed_reg(e);
      add_pass(e, (VmFold)ps[1].f, x, ps[1].what, (int)m, (VmPost)ps[1].post, n2, e->n1[m], 0);
      e->n2[m] = n2;
      break;
    case KO_LAYERNORM: /* n1: the mean; n2: 1 / sqrt(var + eps) */
      e->n1[m] = fixed_reg(e);
      n2 = fixed_reg(e);
      if (e->c->mode == VMM_ROWS) { /* one pass (FOLDSH): the native tier's ln_stats */
        add_pass(e, VMF_SUM, x, Q_SHIFTED, (int)m, VMP_LNSHIFT, e->n1[m], n2, eps);
      } else {
        add_pass(e, (VmFold)ps[0].f, x, ps[0].what, (int)m, (VmPost)ps[0].post, e->n1[m], -1, 0);
        add_pass(e, (VmFold)ps[1].f, x, ps[1].what, (int)m, (VmPost)ps[1].post, n2, -1, eps);
      }
      e->n2[m] = n2;
      break;
    case KO_RMSNORM: /* n2: 1 / sqrt(mean square + eps) */
      n2 = fixed_reg(e);
      add_pass(e, (VmFold)ps[0].f, x, ps[0].what, (int)m, (VmPost)ps[0].post, n2, -1, eps);
      e->n2[m] = n2;
      break;
    default: break;
    }
  }
}

static bool is_full(const Enc *e, uint32_t v) {
  const Node *a = ir_node(e->g, v), *d = ir_node(e->g, e->k->domain);
  return a->rank == d->rank && !memcmp(ir_shape(e->g, v), ir_shape(e->g, e->k->domain), a->rank * sizeof(Dim));
}

/* The stores of the full-shaped (full) or the other (!full) outputs. */
static VmProg stores(Enc *e, bool full) {
  forget(e);
  enum { MAXOUT = 256 };
  int vals[MAXOUT];
  for (uint32_t o = 0; o < e->k->noutputs && o < MAXOUT; o++) /* every value first: an */
    if (is_full(e, fu_outputs(e->p, e->k)[o]) == full)       /* output may be the stash */
      vals[o] = eval(e, fu_outputs(e->p, e->k)[o]);
  for (uint32_t o = 0; o < e->k->noutputs; o++) {
    uint32_t v = fu_outputs(e->p, e->k)[o];
    if (is_full(e, v) != full) continue;
    int ctx = !full && e->axes && ir_node(e->g, v)->rank == e->rr && e->rr < e->r, inner;
    int val = o < MAXOUT ? vals[o] : eval(e, v);
    int s = base_reg(e, e->k->ninputs + o, v, ctx, &inner);
    DType t = (DType)ir_node(e->g, v)->dtype;
    store(e, by_dtype(t, VM_ST_F32, VM_ST_I32, VM_ST_I64, VM_ST_BOOL), val, s, e->k->ninputs + o, inner);
  }
  return end_prog(e, NULL, 0);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A mix kernel with a normalization prologue runs the plain mix driver on a buffer the
 * runtime fills with the prologue's value: b must be a 2-D kernel input read as it is. */
static bool prologue_ok(const KnKernel *kk) {
  const Partition *p = kk->p;
  const Kernel *k = kk->k;
  if (!kn_mix_prologue(p, k)) return true;
  const KnIns *in = &kk->ins[kk->product];
  if (in->ta || in->tb) return false;
  uint32_t b = ir_operand(p->g, fu_members(p, k)[kk->product], 1);
  for (uint32_t j = 0; j < k->ninputs; j++)
    if (fu_inputs(p, k)[j] == b) return ir_node(p->g, b)->rank == 2;
  return false;
}

/* A prologue the mix driver computes itself, block by block (pro_kind): its x an input
 * of a's shape, its gamma and beta inputs that hold one value per column (shape [K], or
 * ones before it). Others (a per-row gamma, a broadcast column) are computed by the
 * runtime before the call. */
static void prologue_rows(Enc *e, uint32_t a) {
  const Graph *g = e->g;
  const Node *an = ir_node(g, a);
  const KnIns *in = &e->kk->ins[member_index(e, a)];
  uint32_t nops = (uint32_t)kn_op_arity((KnOp)in->op); /* x, gamma (and beta) */
  int ib[3] = {0, 0, 0};
  for (uint32_t i = 0; i < nops; i++) {
    uint32_t u = ir_operand(g, a, i);
    const Node *un = ir_node(g, u);
    if ((ib[i] = input_index(e, u)) < 0 || un->dtype != DT_F32) return;
    if (i == 0 && (un->rank != an->rank || memcmp(ir_shape(g, u), ir_shape(g, a), (size_t)an->rank * sizeof(Dim))))
      return;
    int64_t one;
    for (int d = 0; i > 0 && d < un->rank; d++) {
      Dim x = ir_shape(g, u)[d];
      if (d + 1 == un->rank ? x != ir_shape(g, a)[an->rank - 1] : !ir_dim_is_const(g, x, &one) || one != 1) return;
    }
  }
  VmCode *c = e->c;
  c->pro_kind = in->op == KO_LAYERNORM ? 1 : 2;
  c->pro_x = (uint32_t)ib[0], c->pro_g = (uint32_t)ib[1], c->pro_b = nops == 3 ? (uint32_t)ib[2] : 0;
  c->pro_eps = (float)in->eps;
}

VmCode *vm_encode(const KnKernel *kk, char *why, size_t n) {
  double t0 = now_us();
  const Partition *p = kk->p;
  const Kernel *k = kk->k;
  if (!kk->ok) return snprintf(why, n, "%s", kk->why), NULL; /* the native tier's coverage */
  if (kk->vm_why[0]) return snprintf(why, n, "%s", kk->vm_why), NULL; /* the op table's vm column */
  if (k->kind == KK_EXTERN) { /* a call through libffi */
    VmCode *c = vm_encode_extern(kk);
    c->encode_us = now_us() - t0;
    return c;
  }
  if (kn_multi_mode(p->g, k))
    return snprintf(why, n, "a reduction over the last axis and others is not encoded"), NULL;
  if (k->ninputs + k->noutputs > 254) return snprintf(why, n, "more than 254 buffers"), NULL;
  if (!prologue_ok(kk)) return snprintf(why, n, "a normalization prologue with a batched or transposed b is not encoded"), NULL;
  for (uint32_t i = 0; i < k->nmembers + k->ninputs; i++) { /* tiles are 32-bit lanes */
    uint32_t v = i < k->nmembers ? fu_members(p, k)[i] : fu_inputs(p, k)[i - k->nmembers];
    DType t = (DType)ir_node(p->g, v)->dtype;
    if (t == DT_F16 || t == DT_BF16) return snprintf(why, n, "%s values are not encoded", ir_dtype_name(t)), NULL;
  }
  const Graph *g = p->g;
  VmCode *c = calloc(1, sizeof *c);
  int *mem = malloc((5 * (size_t)k->nmembers + 2 * (size_t)k->ninputs + 1) * sizeof *mem);
  if (!c || !mem) ir_oom();
  Enc e = {.kk = kk, .p = p, .g = g, .k = k, .c = c, .memo = mem, .inmemo = mem + 5 * k->nmembers, .red = mem + k->nmembers,
           .n1 = mem + 2 * k->nmembers, .n2 = mem + 3 * k->nmembers, .mm = -1, .ns = VS_FREE, .mask = -1, .stash_member = -1};
  for (uint32_t i = 0; i < 5 * k->nmembers; i++) mem[i] = -1;
  const Node *dn = ir_node(g, k->domain);
  e.r = e.rr = dn->rank, e.dom = ir_shape(g, k->domain);
  if (k->kind == KK_ROW) e.axes = k->axes, e.rr = e.r - __builtin_popcount(k->axes);
  for (int d = 0; d < e.r; d++) { /* dimtab[0..r) is the domain, position by position */
    VmDim v = {0, -1};
    if (!ir_dim_is_const(g, e.dom[d], &v.c))
      for (uint32_t q = 0; q < k->ndims; q++)
        if (p->dims.v[k->dims + q] == e.dom[d]) v.q = (int32_t)q;
    vec_push(e.dimtab, v);
    vec_push(e.dimid, e.dom[d]);
  }
  c->r = (uint8_t)e.r, c->axes = e.axes;
  c->ninputs = k->ninputs, c->noutputs = k->noutputs, c->ndims = k->ndims;
  if (k->kind == KK_MIX) {
    uint32_t v = fu_members(p, k)[kk->product], a = ir_operand(g, v, 0), b = ir_operand(g, v, 1);
    bool ta = kk->ins[kk->product].ta, tb = kk->ins[kk->product].tb;
    const Node *an = ir_node(g, a);
    int kd = dim_index(&e, ir_shape(g, a)[an->rank - (ta ? 2 : 1)]);
    c->K = e.dimtab.v[kd];
    e.mm = fixed_reg(&e);
    c->mm_reg = (uint8_t)e.vr.v[e.mm].phys;
    bool pro = kn_mix_prologue(p, k); /* a 2-D b read as it is (prologue_ok) */
    if (ta || tb || ir_node(g, b)->rank != 2 || (input_index(&e, a) < 0 && !pro) || input_index(&e, b) < 0) {
      c->mode = VMM_GEMM;
      Ix Pa[DVM_MAX_RANK], Pb[DVM_MAX_RANK];
      Ix mi = ix_s(sidx(e.r - 2)), ki = ix_s((Sv){VS_K, false, 0});
      for (int pass = 0; pass < 2; pass++) {
        uint32_t x = pass ? b : a;
        const Node *xn = ir_node(g, x);
        Ix *P = pass ? Pb : Pa;
        forget(&e);
        for (int t = 0; t + 2 < xn->rank; t++) {
          int d = t + e.r - xn->rank;
          int64_t one;
          bool bc = d < 0 || (ir_dim_is_const(g, ir_shape(g, x)[t], &one) && one == 1 && ir_shape(g, x)[t] != e.dom[d]);
          P[t] = bc ? ix_s(sconst(&e, 0)) : ix_s(sidx(d));
        }
        Ix col = {sconst(&e, 0), 1, -1};
        if (!pass && xn->rank == 1) P[0] = ki; /* a vector a ([K] @ b: one row; kn_supported) */
        else if (!pass) P[xn->rank - 2] = ta ? ki : mi, P[xn->rank - 1] = ta ? mi : ki;
        else P[xn->rank - 2] = tb ? col : ki, P[xn->rank - 1] = tb ? ki : col;
        int val = view_at(&e, x, P);
        VmProg pr = end_prog(&e, &val, 1);
        if (!pass) c->prog_a = pr, c->a_reg = (uint8_t)e.vr.v[val].phys;
        else c->prog_b = pr, c->b_reg = (uint8_t)e.vr.v[val].phys;
        e.vr.v[val].fixed = true; /* keep it out of later programs' way */
        e.fixed_regs |= 1ull << e.vr.v[val].phys;
      }
    } else {
      c->mode = VMM_MIX;
      /* a prologue's a: computed by the driver (prologue_rows), else by the runtime into
         the buffer after the packed one */
      c->a_buf = pro ? k->ninputs + k->noutputs + 1 : (uint32_t)input_index(&e, a), c->b_buf = (uint32_t)input_index(&e, b);
      c->has_prologue = pro, c->prologue = pro ? a : 0;
      if (pro) prologue_rows(&e, a);
      c->packed = kn_packed_input(p, k) >= 0;
    }
  } else {
    c->mode = kn_col_mode(g, k) ? VMM_COLS : VMM_ROWS;
    if (c->mode == VMM_ROWS && kk->stash >= 0) { /* a softmax keeps its exp row in an f32 output's row */
      int inner;
      e.stash_member = kk->stash, e.stash_buf = k->ninputs + kk->stash_out;
      e.stash_reg = base_reg(&e, e.stash_buf, fu_outputs(p, k)[kk->stash_out], 0, &inner);
    }
    passes(&e);
  }
  c->full = stores(&e, true);
  c->reduced = stores(&e, false);
  for (uint32_t i = 0; i < e.pass.n; i++) /* rows: which slots are read as tiles, from their */
    for (uint32_t q = e.pass.v[i].prog.start; q < c->reduced.start && !e.pass.v[i].splat; q++) { /* pass */
      /* on up to the reduced outputs' stores, which run at one lane (the code's last program) */
      const VmIns *in = &e.code.v[q];
      int32_t fld[NF] = {in->d, in->a, in->b, in->imm, in->imm & 0xff, in->imm >> 8 & 0xff, in->imm >> 16 & 0xff};
      for (int f = 0; f < NF; f++)
        if ((kind((VmOp)in->op, f) == 't' || kind((VmOp)in->op, f) == 'w') &&
            (fld[f] == e.pass.v[i].slot || (e.pass.v[i].post == VMP_LNSHIFT && fld[f] == e.pass.v[i].aux)))
          e.pass.v[i].splat = true;
    }
  free(mem);
  vec_free(e.tmp);
  vec_free(e.vr);
  vec_free(e.dimid);
  c->code = e.code.v, c->ncode = e.code.n;
  c->pool = e.pool.v, c->npool = e.pool.n;
  c->pass = e.pass.v, c->npass = e.pass.n;
  c->base = e.base.v, c->nbase = e.base.n;
  c->dimtab = e.dimtab.v, c->ndimtab = e.dimtab.n;
  c->nsreg = (uint32_t)e.ns;
  if (c->ndimtab > 256) fail(&e, "%s", "the kernel has more than 256 distinct dims");
  if (e.failed) {
    snprintf(why, n, "%s", e.why);
    vm_free(c);
    return NULL;
  }
  c->encode_us = now_us() - t0;
  return c;
}

void vm_free(VmCode *c) {
  if (!c) return;
  free(c->code);
  free(c->pool);
  free(c->pass);
  free(c->base);
  free(c->dimtab);
  free(c->ext);
  free(c);
}

/* ---- disassembly --------------------------------------------------------------------------- */

static const char *const fold_names[] = {"sum", "max", "min", "prod", "maxord"};

static void dis_prog(Buf *b, const VmCode *c, const char *name, VmProg pr) {
  if (!pr.n) return;
  ir_put(b, "  %s:\n", name);
  for (uint32_t i = pr.start; i < pr.start + pr.n; i++) {
    const VmIns *in = &c->code[i];
    const char *f = op_fmt[in->op];
    ir_put(b, "    %-9s", op_names[in->op]);
    int32_t fld[NF] = {in->d, in->a, in->b, in->imm, in->imm & 0xff, in->imm >> 8 & 0xff, in->imm >> 16 & 0xff};
    const char *sep = " ";
    for (int k = 0; k < NF; k++) {
      switch (kind((VmOp)in->op, k)) {
      case 't': case 'w': case 'u': case 'f':
        if ((k == 3 && fld[k] < 0) || (k > 3 && fld[k] == 0xff)) ir_put(b, "%s-", sep);
        else ir_put(b, "%s%s%d%s", sep, f[k < 4 ? k : 3] == 'w' ? "w" : "r", fld[k],
                    kind((VmOp)in->op, k) == 'u' ? "[0]" : kind((VmOp)in->op, k) == 'f' ? "[acc]" : "");
        break;
      case 's': ir_put(b, "%ss%d", sep, fld[k]); break;
      case 'n': ir_put(b, "%sbuf%d", sep, fld[k]); break;
      case 'i':
        if (in->op == VM_FOLD) ir_put(b, "%s%s", sep, fold_names[fld[k] < 5 ? fld[k] : 0]);
        else ir_put(b, "%s#%d", sep, fld[k]);
        break;
      case 'k': {
        int64_t v = c->pool[fld[k]];
        float fv;
        uint32_t bits = (uint32_t)v;
        memcpy(&fv, &bits, 4);
        if (in->op == VM_K_F32 || in->op == VM_MAXK || in->op == VM_MINK) ir_put(b, "%s%.9g", sep, (double)fv);
        else ir_put(b, "%s%lld", sep, (long long)v);
        break;
      }
      default: continue;
      }
      sep = ", ";
    }
    ir_put(b, "\n");
  }
}

char *vm_disasm(const VmCode *c) {
  if (c->mode == VMM_EXTERN) return vm_disasm_extern(c);
  static const char *const modes[] = {"rows", "cols", "mix", "gemm"};
  static const char *const posts[] = {"", " / L", " -> 1/x", " -> aux + log x", " -> 1/sqrt(x/L + eps)",
                                       " -> mean; aux = 1/sqrt(var + eps)"};
  Buf b = {0};
  ir_put(&b, "  mode %s, %u instructions, %u tile registers, %u scalar registers, encoded in %.2f us\n",
         modes[c->mode], c->ncode, c->nreg, c->nsreg, c->encode_us);
  for (uint32_t i = 0; i < c->nbase; i++) {
    const VmBase *bs = &c->base[i];
    ir_put(&b, "  s%d = offset of buf%u at the position (axes", bs->reg, bs->buf);
    for (int t = 0; t < bs->rank; t++) ir_put(&b, " %d", bs->axis[t]);
    ir_put(&b, ")\n");
  }
  for (uint32_t i = 0; i < c->npass; i++) {
    const VmPass *ps = &c->pass[i];
    char name[96];
    if (c->mode == VMM_ROWS)
      snprintf(name, sizeof name, "pass %u%s: r%d = fold %s%s", i, ps->prog.whole ? " (whole row)" : "", ps->slot,
               fold_names[ps->fold], posts[ps->post]);
    else
      snprintf(name, sizeof name, "pass %u: r%d = fold %s of r%d%s", i, ps->slot, fold_names[ps->fold], ps->src, posts[ps->post]);
    dis_prog(&b, c, name, ps->prog);
  }
  if (c->mode == VMM_MIX && c->pro_kind == 1)
    ir_put(&b, "  r%d = layernorm(buf%u, buf%u, buf%u, eps=%g) @ buf%u (tile; per row block)\n", c->mm_reg, c->pro_x,
           c->pro_g, c->pro_b, (double)c->pro_eps, c->b_buf);
  else if (c->mode == VMM_MIX && c->pro_kind == 2)
    ir_put(&b, "  r%d = rmsnorm(buf%u, buf%u, eps=%g) @ buf%u (tile; per row block)\n", c->mm_reg, c->pro_x, c->pro_g,
           (double)c->pro_eps, c->b_buf);
  else if (c->mode == VMM_MIX) ir_put(&b, "  r%d = buf%u @ buf%u (tile)\n", c->mm_reg, c->a_buf, c->b_buf);
  if (c->mode == VMM_GEMM) {
    dis_prog(&b, c, "a at k", c->prog_a);
    dis_prog(&b, c, "b at k", c->prog_b);
    ir_put(&b, "  r%d = sum over k of r%d * r%d\n", c->mm_reg, c->a_reg, c->b_reg);
  }
  dis_prog(&b, c, c->full.whole ? "full outputs (whole row)" : "full outputs", c->full);
  if (c->reduced.n > 1) dis_prog(&b, c, "reduced outputs", c->reduced);
  return ir_buf_done(&b);
}
