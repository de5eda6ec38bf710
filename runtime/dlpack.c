/* runtime/dlpack.c — tensors to and from DLPack (dlpack/dlpack.h), without copies.
 *
 * In: a DLManagedTensor on the CPU whose dtype dvm has and whose layout is C order becomes
 * a dvm_tensor over the same memory; the dvm tensor owns the DLPack tensor and calls its
 * deleter when it is destroyed (Tensor.release). Out: a dvm_tensor moves into a
 * DLManagedTensor that holds its shape and row-major strides beside it; the deleter the
 * consumer calls destroys the tensor. The standard's rules: a producer's tensor is the
 * consumer's until it calls the deleter, once; a consumer that refuses it leaves it with
 * the producer. */
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

/* kDLBool, added to the standard after the header Debian ships (0.6): bytes of 0 or 1. */
enum { DL_BOOL = 6 };

/* dvm's dtype for a DLPack one, or -1. */
static int from_dl(DLDataType t) {
  if (t.lanes != 1) return -1;
  switch (t.code) {
  case kDLFloat: return t.bits == 32 ? DT_F32 : t.bits == 16 ? DT_F16 : t.bits == 64 ? DT_F64 : -1;
  case kDLBfloat: return t.bits == 16 ? DT_BF16 : -1;
  case kDLInt:
    return t.bits == 8 ? DT_I8 : t.bits == 16 ? DT_I16 : t.bits == 32 ? DT_I32 : t.bits == 64 ? DT_I64 : -1;
  case kDLUInt:
    return t.bits == 8 ? DT_U8 : t.bits == 16 ? DT_U16 : t.bits == 32 ? DT_U32 : t.bits == 64 ? DT_U64 : -1;
  case DL_BOOL: return t.bits == 8 ? DT_BOOL : -1;
  default: return -1;
  }
}

/* DLPack's dtype for a dvm one (from_dl's inverse). */
static DLDataType to_dl(DType t) {
  uint8_t bits = (uint8_t)(8 * ir_dtype_size(t));
  switch (t) {
  case DT_F32:
  case DT_F16:
  case DT_F64: return (DLDataType){kDLFloat, bits, 1};
  case DT_BF16: return (DLDataType){kDLBfloat, 16, 1};
  case DT_BOOL: return (DLDataType){DL_BOOL, 8, 1};
  default: return (DLDataType){ir_dtype_is_unsigned(t) ? kDLUInt : kDLInt, bits, 1};
  }
}

static void call_deleter(void *arg) {
  DLManagedTensor *m = arg;
  if (m->deleter) m->deleter(m);
}

dvm_status dvm_tensor_from_dlpack(struct DLManagedTensor *src, dvm_tensor **out) {
  Err err;
  if (!out || !src) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_from_dlpack: NULL argument"});
  *out = NULL;
  const DLTensor *d = &src->dl_tensor;
  if (d->device.device_type != kDLCPU)
    return ir_err(&err, DVM_ERR_USAGE, "dvm_tensor_from_dlpack: the tensor is on device type %d, not the CPU",
                  (int)d->device.device_type), rt_fail(&err);
  int dt = from_dl(d->dtype);
  if (dt < 0)
    return ir_err(&err, DVM_ERR_USAGE,
                  "dvm_tensor_from_dlpack: dtype code %u, %u bits, %u lanes is not one dvm has (f32 f16 bf16 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool)",
                  d->dtype.code, d->dtype.bits, d->dtype.lanes), rt_fail(&err);
  if (d->ndim < 0 || d->ndim > DVM_MAX_RANK)
    return ir_err(&err, DVM_ERR_USAGE, "dvm_tensor_from_dlpack: rank %d (at most %d)", d->ndim, DVM_MAX_RANK),
           rt_fail(&err);
  if (d->ndim && !d->shape)
    return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_from_dlpack: the tensor has no shape"});
  int64_t numel = rt_numel(d->ndim, d->shape); /* first: no overflow in the strides' products */
  if (numel < 0)
    return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_from_dlpack: a negative dim, or more elements than int64 holds"});
  if (d->strides && numel > 0) { /* row-major, but a dim of size 1 may have any stride (and an
                                    empty tensor has no layout) */
    int64_t expect = 1;
    for (int i = d->ndim - 1; i >= 0; i--) {
      if (d->shape[i] != 1 && d->strides[i] != expect)
        return ir_err(&err, DVM_ERR_USAGE,
                      "dvm_tensor_from_dlpack: not C-contiguous: dim %d (size %lld) has stride %lld, C order has %lld",
                      i, (long long)d->shape[i], (long long)d->strides[i], (long long)expect), rt_fail(&err);
      expect *= d->shape[i];
    }
  }
  Tensor *t;
  if (rt_tensor_wrap((DType)dt, d->ndim, d->shape, (char *)d->data + d->byte_offset, &t, &err)) return rt_fail(&err);
  t->release = call_deleter, t->release_arg = src;
  *out = t;
  return rt_ok();
}

/* What a dvm tensor moves into: the DLPack tensor, its shape and strides, the tensor. */
typedef struct Export {
  DLManagedTensor m;
  int64_t shape[DVM_MAX_RANK], strides[DVM_MAX_RANK];
} Export;

static void export_deleter(DLManagedTensor *m) {
  rt_tensor_free(m->manager_ctx);
  free(m); /* the Export: m is its first member */
}

dvm_status dvm_tensor_to_dlpack(dvm_tensor *t, struct DLManagedTensor **out) {
  if (!out || !t) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_tensor_to_dlpack: NULL argument"});
  Export *x = calloc(1, sizeof *x);
  if (!x) return rt_fail(&(Err){DVM_ERR_NOMEM, "out of memory"});
  int64_t stride = 1;
  for (int i = t->rank - 1; i >= 0; i--) x->shape[i] = t->shape[i], x->strides[i] = stride, stride *= t->shape[i];
  x->m.dl_tensor = (DLTensor){.data = t->data, .device = {kDLCPU, 0}, .ndim = t->rank, .dtype = to_dl(t->dtype),
                              .shape = x->shape, .strides = x->strides, .byte_offset = 0};
  x->m.manager_ctx = t;
  x->m.deleter = export_deleter;
  *out = &x->m;
  return rt_ok();
}
