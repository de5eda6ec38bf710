/* vm/extern.c — extern kernels (one `call` node, docs/extern.md) in the bytecode tier.
 *
 * There is nothing to interpret: the "bytecode" of an extern kernel is the call plan of
 * kernel/extern.c (kn_extern_plan), and running it gathers the arguments from the kernel
 * ABI's buffers and dims, converts by-value operands as the reference executor does
 * (ir_extern_scalar), and calls the function through libffi with the ffi_cif prepared at
 * registration (Extern.invoke, runtime/ffi.c: vm/ includes no ffi.h). Its extent is 1:
 * the call is never split across threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

VmCode *vm_encode_extern(const KnKernel *kk) {
  KnExt *x = malloc(sizeof *x);
  VmCode *c = calloc(1, sizeof *c);
  if (!x || !c) ir_oom();
  *x = *kk->ext;
  c->mode = VMM_EXTERN;
  c->ninputs = kk->nin, c->noutputs = kk->nout, c->ndims = kk->ndims;
  c->ext = x;
  return c;
}

void vm_call(const VmCode *c, void *const *bufs, const int64_t *dims, int64_t begin, int64_t end) {
  if (begin >= end) return;
  const KnExt *x = c->ext;
  const Extern *e = x->e;
  void *args[EXT_MAX_PARAMS], *ptr[EXT_MAX_PARAMS];
  int64_t val[EXT_MAX_PARAMS];
  for (int i = 0; i < e->nparams; i++) {
    const KnExtArg *a = &x->arg[i];
    ExtType t = (ExtType)e->param[i].type;
    args[i] = &val[i];
    switch (a->kind) {
    case KX_BUF:
      ptr[i] = bufs[a->buf];
      args[i] = &ptr[i];
      break;
    case KX_LOAD: {
      const void *b = bufs[a->buf];
      float f;
      int32_t i32;
      int64_t i64 = 0;
      switch (a->dtype) {
      case DT_F32: memcpy(&f, b, 4), ir_extern_scalar(t, true, f, 0, &val[i]); continue;
      case DT_I32: memcpy(&i32, b, 4), i64 = i32; break;
      case DT_I64: memcpy(&i64, b, 8); break;
      default: i64 = *(const uint8_t *)b != 0; break; /* bool */
      }
      ir_extern_scalar(t, false, 0, i64, &val[i]);
      break;
    }
    case KX_DIM: ir_extern_scalar(t, false, 0, dims[a->q], &val[i]); break;
    default: val[i] = a->bits; break; /* KX_CONST */
    }
  }
  int64_t ret = 0;
  e->invoke(e, args, &ret);
  void *out = bufs[x->out];
  double d;
  switch (e->ret) { /* a scalar result is the output's one element */
  case ET_F32:
  case ET_I32: memcpy(out, &ret, 4); break;
  case ET_I64: memcpy(out, &ret, 8); break;
  case ET_F64: {
    memcpy(&d, &ret, 8);
    float f = (float)d;
    memcpy(out, &f, 4);
    break;
  }
  default: break;
  }
}

char *vm_disasm_extern(const VmCode *c) {
  static const char *const kinds[] = {"buf", "load", "const", "dim"};
  const Extern *e = c->ext->e;
  Buf b = {0};
  ir_put(&b, "  mode extern: call %s (%s) through libffi\n", e->name, e->sig);
  for (int i = 0; i < e->nparams; i++) {
    const KnExtArg *a = &c->ext->arg[i];
    ir_put(&b, "    arg %d (%s): %s", i + 1, ir_ext_type_name(e->param[i]), kinds[a->kind]);
    if (a->kind == KX_BUF || a->kind == KX_LOAD) ir_put(&b, " buf%u", a->buf);
    if (a->kind == KX_DIM) ir_put(&b, " d%u", a->q);
    if (a->kind == KX_CONST) ir_put(&b, " 0x%llx", (unsigned long long)a->bits);
    ir_put(&b, "\n");
  }
  if (e->ret != ET_VOID) ir_put(&b, "    result -> buf%u[0]\n", c->ext->out);
  return ir_buf_done(&b);
}
