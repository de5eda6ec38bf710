/* runtime/ffi.c — extern ops: the context's registry of host functions, and calls through
 * libffi. The only file that includes ffi.h (docs/design.md).
 *
 * dvm_register_extern parses the signature (ir/extern.c) and prepares its ffi_cif once;
 * the Extern it makes lives until the context is destroyed, and a name is registered once
 * (compiled models and native code keep the function: replacing it under them would be a
 * use of a stale function). Extern.invoke calls the function through the prepared cif; the
 * reference executor (runtime/ref.c) and the bytecode tier (vm/extern.c) use it, the
 * native tier calls the function directly (jit/extern.c).
 *
 * When a model is compiled, rt_extern_resolve finds every call node's function and checks
 * the node against its signature (ir_extern_args), so a missing function or a mismatch is
 * an error at compile time naming the graph line, the node and the function. */
#include <ffi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "runtime.h"

/* One registration: the plain-data Extern first (the tiers see only it), then libffi's. */
typedef struct ExtReg {
  Extern e;
  ffi_cif cif;
  ffi_type *types[EXT_MAX_PARAMS];
  struct ExtReg *next;
} ExtReg;

struct ExtTable {
  pthread_mutex_t lock;
  ExtReg *head;
};

ExtTable *rt_ext_table_new(void) {
  ExtTable *t = calloc(1, sizeof *t);
  if (t) pthread_mutex_init(&t->lock, NULL);
  return t;
}

void rt_ext_table_free(ExtTable *t) {
  if (!t) return;
  for (ExtReg *r = t->head, *next; r; r = next) next = r->next, free(r);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

static ffi_type *ffi_of(ExtType t) {
  switch (t) {
  case ET_I32: return &ffi_type_sint32;
  case ET_I64: return &ffi_type_sint64;
  case ET_F32: return &ffi_type_float;
  case ET_F64: return &ffi_type_double;
  case ET_PTR: return &ffi_type_pointer;
  default: return &ffi_type_void;
  }
}

/* Extern.invoke: the call through the prepared cif. libffi widens integer results to
 * ffi_arg; the caller gets the result in its C type. */
static void invoke(const Extern *e, void **args, void *ret) {
  const ExtReg *r = (const ExtReg *)e;
  union {
    ffi_sarg i;
    int64_t l;
    float f;
    double d;
  } rv;
  memset(&rv, 0, sizeof rv);
  ffi_call((ffi_cif *)&r->cif, FFI_FN(e->fn), &rv, args);
  switch (e->ret) {
  case ET_I32: {
    int32_t x = (int32_t)rv.i;
    memcpy(ret, &x, sizeof x);
    break;
  }
  case ET_I64: memcpy(ret, &rv.l, 8); break;
  case ET_F32: memcpy(ret, &rv.f, 4); break;
  case ET_F64: memcpy(ret, &rv.d, 8); break;
  default: break;
  }
}

static ExtReg *find(ExtTable *t, const char *name, size_t n) {
  for (ExtReg *r = t->head; r; r = r->next)
    if (strlen(r->e.name) == n && !memcmp(r->e.name, name, n)) return r;
  return NULL;
}

dvm_status dvm_register_extern(dvm_context *ctx, const char *name, dvm_extern_fn fn, const char *signature) {
  Err err = {0};
  if (!ctx || !name || !fn || !signature)
    return ir_err(&err, DVM_ERR_USAGE, "dvm_register_extern: %s is NULL",
                  !ctx ? "the context" : !name ? "the name" : !fn ? "the function" : "the signature"),
           rt_fail(&err);
  size_t n = strlen(name);
  if (!ir_valid_name(name, n) || n >= EXT_NAME_MAX)
    return ir_err(&err, DVM_ERR_USAGE, "extern '%s': a name is [A-Za-z_][A-Za-z0-9_.]* and shorter than %d "
                  "characters (it is written fn=NAME in a graph)", name, EXT_NAME_MAX),
           rt_fail(&err);
  if (strlen(signature) >= EXT_SIG_MAX)
    return ir_err(&err, DVM_ERR_SYNTAX, "extern '%s': the signature is longer than %d characters", name,
                  EXT_SIG_MAX - 1),
           rt_fail(&err);
  ExtReg *r = calloc(1, sizeof *r);
  if (!r) return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  memcpy(r->e.name, name, n + 1);
  snprintf(r->e.sig, sizeof r->e.sig, "%s", signature);
  if (ir_extern_parse(signature, &r->e, &err)) {
    free(r);
    return rt_fail(&err);
  }
  r->e.fn = fn;
  r->e.invoke = invoke;
  for (int i = 0; i < r->e.nparams; i++) r->types[i] = ffi_of((ExtType)r->e.param[i].type);
  if (ffi_prep_cif(&r->cif, FFI_DEFAULT_ABI, r->e.nparams, ffi_of((ExtType)r->e.ret), r->types) != FFI_OK) {
    free(r);
    return ir_err(&err, DVM_ERR_UNSUPPORTED, "extern '%s': libffi cannot prepare a call of \"%s\"", name,
                  signature),
           rt_fail(&err);
  }
  /* the key of every kernel that calls it: name, parsed signature and address */
  uint64_t h[3 + 2 * EXT_MAX_PARAMS];
  int k = 0;
  h[k++] = XXH3_64bits(name, n);
  h[k++] = r->e.ret;
  h[k++] = (uint64_t)(uintptr_t)fn;
  for (int i = 0; i < r->e.nparams; i++) h[k++] = r->e.param[i].type, h[k++] = (uint64_t)(r->e.param[i].dtype + 1);
  r->e.hash = XXH3_64bits(h, (size_t)k * sizeof *h);
  ExtTable *t = rt_context_externs(ctx);
  pthread_mutex_lock(&t->lock);
  ExtReg *old = find(t, name, n);
  if (!old) r->next = t->head, t->head = r;
  pthread_mutex_unlock(&t->lock);
  if (old) {
    free(r);
    return ir_err(&err, DVM_ERR_USAGE, "extern '%s' is already registered in this context (as \"%s\"): a name "
                  "is registered once", name, old->e.sig),
           rt_fail(&err);
  }
  return rt_ok();
}

dvm_status rt_extern_resolve(dvm_context *ctx, Graph *g, Err *err) {
  ExtTable *t = ctx ? rt_context_externs(ctx) : NULL;
  ExtArg args[EXT_MAX_PARAMS];
  const Extern **ext = NULL;
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op != OP_CALL) continue;
    const char *fn = ir_s(g, ir_attr(g, v, AK_FN)->off);
    ExtReg *r = NULL;
    if (t) {
      pthread_mutex_lock(&t->lock);
      r = find(t, fn, strlen(fn));
      pthread_mutex_unlock(&t->lock);
    }
    if (!r)
      return free(ext), ir_errl(err, DVM_ERR_GRAPH, g->file, n->line, "%s = call: fn %s is not registered "
                     "(dvm_register_extern)", ir_s(g, n->name), fn);
    if (ir_extern_args(g, v, &r->e, args, err)) return free(ext), err->code;
    if (!ext && !(ext = calloc(g->nodes.n, sizeof *ext))) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
    ext[v] = &r->e;
  }
  free(g->ext); /* a graph may be resolved again after nodes were added (dumps) */
  g->ext = ext;
  return DVM_OK;
}
