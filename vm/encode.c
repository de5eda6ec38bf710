/* vm/encode.c — the bytecode encoder's core: instructions on virtual registers appended to
 * the current program, the constant pool, and at each program's end a peephole (fuse:
 * MUL then ADD -> MULADD), the check whether it may run over whole rows (span_ok,
 * VmProg.whole) and register allocation by liveness (a linear scan: a register is free
 * after its last use); per-row results of reductions get reserved registers (slots).
 * vm/enc.h lists the encoder's other files. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "enc.h"

/* Each op's field kinds (vm/ops.def): shared with the disassembly. */
const char *const enc_op_fmt[VM_NOPS] = {
#define VMOP(id, fmt) fmt,
#include "ops.def"
#undef VMOP
};

void enc_fail(Enc *e, const char *fmt, const char *what) {
  if (!e->failed) snprintf(e->why, e->nwhy, fmt, what);
  e->failed = true;
}

/* ---- emitting ------------------------------------------------------------------------------ */

int32_t enc_pool_add(Enc *e, int64_t v) {
  for (uint32_t i = 0; i < e->pool.n; i++)
    if (e->pool.v[i] == v) return (int32_t)i;
  vec_push_from(e->pool, e->few->pool, v);
  return (int32_t)e->pool.n - 1;
}

int32_t enc_pool_f(Enc *e, float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  return enc_pool_add(e, bits);
}

int enc_constf(Enc *e, float f) { return enc_emit(e, VM_K_F32, 0, 0, enc_pool_f(e, f)); }

/* Per op, a bit per field that names a tile register (kinds t, w, u and f), made once
 * per process from enc_op_fmt: register allocation asks it for every field it visits. */
static uint8_t tile_bits[VM_NOPS];
static pthread_once_t tile_once = PTHREAD_ONCE_INIT;
static atomic_bool tile_made; /* the fast path: no call once it is made */

static void tile_init(void) {
  for (int op = 0; op < VM_NOPS; op++)
    for (int i = 0; i < NF; i++) {
      char f = enc_kind((VmOp)op, i);
      if (f == 't' || f == 'w' || f == 'u' || f == 'f') tile_bits[op] |= (uint8_t)(1u << i);
    }
  atomic_store_explicit(&tile_made, true, memory_order_release);
}

/* tile_bits, made if it is not yet. */
static inline const uint8_t *tile_fields(void) {
  if (!atomic_load_explicit(&tile_made, memory_order_acquire)) pthread_once(&tile_once, tile_init);
  return tile_bits;
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
    if (enc_op_fmt[op][0] == 's') continue; /* scalars */
    if (op == VM_LD_F32 && in->imm == 1) {
      named |= 1ull << in->d;
      continue;
    }
    if (op == VM_ST_F32 && in->imm == 1 && (named >> in->d & 1)) continue;
    if (op != VM_K_F32 && (op < VM_NEG || op > VM_FOLDEXP)) return false;
    int32_t fld[NF] = {in->d, in->a, in->b, in->imm, in->imm & 0xff, in->imm >> 8 & 0xff, in->imm >> 16 & 0xff};
    for (int f = 1; f < NF; f++)
      if (enc_kind(op, f) == 't' && !(named >> fld[f] & 1)) return false;
    if (enc_kind(op, 0) == 't') {
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
  const uint8_t *tb = tile_fields();
  TIns *t = e->tmp.v;
  uint32_t n = e->tmp.n, dead = 0;
  for (uint32_t i = 0; i < n; i++)
    for (unsigned b = tb[t[i].op]; b; b &= b - 1) {
      int v = t[i].f[__builtin_ctz(b)];
      if (v >= 0) e->vr.v[v].uses = 0, e->vr.v[v].def = -1;
    }
  for (uint32_t i = 0; i < n; i++) {
    VmOp op = (VmOp)t[i].op;
    bool writes = enc_kind(op, 0) == 't' && !(op >= VM_ST_F32 && op <= VM_ST_BOOL);
    for (unsigned b = tb[op]; b; b &= b - 1) {
      int f = __builtin_ctz(b), v = t[i].f[f];
      if (v < 0) continue;
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
VmProg enc_end_prog(Enc *e, const int *keep, int nkeep) {
  const uint8_t *tb = tile_fields();
  fuse(e, keep, nkeep);
  vec_push_from(e->tmp, e->few->tmp, ((TIns){VM_END, {0, 0, 0, 0, -1, -1, -1}}));
  uint32_t n = e->tmp.n;
  for (uint32_t i = 0; i < n; i++)
    for (unsigned b = tb[e->tmp.v[i].op]; b; b &= b - 1) {
      int v = e->tmp.v[i].f[__builtin_ctz(b)];
      if (v >= 0) e->vr.v[v].last = i;
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
    if ((tb[op] & 1) && !store_op && d >= 0 && e->vr.v[d].phys < 0) {
      int w = e->vr.v[d].wide ? 2 : 1, got = -1;
      for (int r = 0; r + w <= VM_MAXREG && got < 0; r++)
        if (!(used >> r & 1) && (w == 1 || !(used >> (r + 1) & 1))) got = r;
      if (got < 0) {
        enc_fail(e, "%s", "the kernel needs more than 64 tile registers");
        got = 0;
      }
      e->vr.v[d].phys = (int16_t)got;
      used |= (w == 2 ? 3ull : 1ull) << got;
      if ((uint32_t)(got + w) > e->c->nreg) e->c->nreg = (uint32_t)(got + w);
    }
    VmIns out = {op, 0, 0, 0, 0};
    int32_t fld[NF];
    memcpy(fld, t->f, sizeof fld);
    for (unsigned b = tb[op]; b; b &= b - 1) {
      int f = __builtin_ctz(b);
      if (fld[f] >= 0) fld[f] = e->vr.v[fld[f]].phys;
    }
    if (enc_kind(op, 3) == 'p') /* three registers in imm's bytes, 0xff none */
      fld[3] = (fld[4] & 0xff) | (fld[5] & 0xff) << 8 | (fld[6] & 0xff) << 16;
    out.d = (uint8_t)fld[0], out.a = (uint8_t)fld[1], out.b = (uint8_t)fld[2], out.imm = fld[3];
    vec_push_from(e->code, e->few->code, out);
    /* registers whose last use this was (the destination too, if never read) */
    for (unsigned b = tb[op]; b; b &= b - 1) {
      int v = t->f[__builtin_ctz(b)];
      if (v < 0 || e->vr.v[v].fixed || e->vr.v[v].last != i) continue;
      used &= ~((e->vr.v[v].wide ? 3ull : 1ull) << e->vr.v[v].phys);
    }
  }
  e->tmp.n = 0;
  pr.whole = span_ok(e, pr);
  return pr;
}

/* A register for the whole kernel (a slot, the product). */
int enc_fixed_reg(Enc *e) {
  int v = enc_newv(e, false);
  for (int r = 0; r < VM_MAXREG; r++)
    if (!(e->fixed_regs >> r & 1)) {
      e->fixed_regs |= 1ull << r;
      e->vr.v[v].phys = (int16_t)r, e->vr.v[v].fixed = true;
      if ((uint32_t)r + 1 > e->c->nreg) e->c->nreg = (uint32_t)r + 1;
      return v;
    }
  enc_fail(e, "%s", "the kernel needs more than 64 tile registers");
  return v;
}

