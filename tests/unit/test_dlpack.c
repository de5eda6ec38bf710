/* tests/unit/test_dlpack.c — tensors to and from DLPack share memory and honour the
 * deleter protocol.
 *
 * In: a DLManagedTensor over a C array becomes a dvm tensor over the same address (with
 * byte_offset applied), runs as a model input in every tier, and its deleter is called
 * exactly once, when the dvm tensor is destroyed; row-major strides, NULL strides and any
 * stride along a dim of size 1 are accepted; a transposed layout, a non-CPU device, a
 * dtype dvm lacks (f64, u8, two lanes) and a rank past DVM_MAX_RANK are refused with
 * DVM_ERR_USAGE naming the problem, and then the deleter is not called (the tensor stays
 * the caller's). Out: a dvm tensor exported has its data address, shape, row-major
 * strides, dtype and CPU device, and the consumer's deleter call destroys it (ASan would
 * report a leak or a double free); exported and imported back, it is the same memory. */
#include <dlpack/dlpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "dvm.h"

#include "check.h"

static int deleted;
static DLManagedTensor *deleted_arg;
static void count_deleter(DLManagedTensor *m) { deleted++, deleted_arg = m; }

/* A managed tensor over data, as a producer would hand it over. */
static DLManagedTensor managed(void *data, DLDataType dt, int ndim, int64_t *shape, int64_t *strides, uint64_t off) {
  DLManagedTensor m = {0};
  m.dl_tensor = (DLTensor){.data = data, .device = {kDLCPU, 0}, .ndim = ndim, .dtype = dt, .shape = shape,
                           .strides = strides, .byte_offset = off};
  m.deleter = count_deleter;
  return m;
}

static const DLDataType F32 = {kDLFloat, 32, 1};

/* Import fails with DVM_ERR_USAGE whose message has `what`, and the deleter is not called. */
static void refused(DLManagedTensor *m, const char *what, const char *name) {
  dvm_tensor *t = (dvm_tensor *)1;
  int before = deleted;
  dvm_status s = dvm_tensor_from_dlpack(m, &t);
  CHECK(s == DVM_ERR_USAGE && strstr(dvm_last_error(), what), "%s: refused naming '%s' (got %d: %s)", name, what,
        (int)s, dvm_last_error());
  CHECK(t == NULL, "%s: no tensor out", name);
  CHECK(deleted == before, "%s: the deleter is not called on refusal", name);
}

static void test_import(void) {
  float a[4 * 6];
  for (int i = 0; i < 24; i++) a[i] = (float)i;
  int64_t shape[2] = {2, 3};
  DLManagedTensor m = managed(a, F32, 2, shape, NULL, 6 * sizeof(float)); /* rows 1-2 of a [4, 6] view */
  dvm_tensor *t = NULL;
  deleted = 0;
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK, "import: %s", dvm_last_error());
  if (!t) return;
  CHECK(dvm_tensor_data(t) == (void *)(a + 6), "the same memory, byte_offset applied");
  CHECK(dvm_tensor_rank(t) == 2 && dvm_tensor_shape(t)[0] == 2 && dvm_tensor_shape(t)[1] == 3, "the shape");
  CHECK(dvm_tensor_dtype(t) == DVM_F32, "the dtype");
  CHECK(dvm_tensor_get_f64(t, 4) == 10.0, "element 4 is a[10]");

  /* a model input in every tier: y = x * 2 + 1 */
  static const char text[] = "graph g\ninput x: f32[N, 3]\nm = mul(x, 2.0)\ny = add(m, 1.0)\noutput y\n";
  dvm_context *ctx;
  dvm_graph *g;
  CHECK(dvm_context_create(&ctx) == DVM_OK && dvm_graph_parse(ctx, text, sizeof text - 1, "g.dvm", &g) == DVM_OK,
        "graph: %s", dvm_last_error());
  dvm_tier tiers[] = {DVM_TIER_REF, DVM_TIER_VM, DVM_TIER_LLVM, DVM_TIER_AUTO};
  for (int k = 0; k < 4; k++) {
    dvm_compile_options o = {tiers[k], 1};
    dvm_model *mo;
    dvm_tensor *y = NULL;
    const char *names[] = {"x"};
    CHECK(dvm_model_compile(ctx, g, &o, &mo) == DVM_OK, "compile tier %d: %s", (int)tiers[k], dvm_last_error());
    CHECK(dvm_model_run(mo, 1, names, &t, &y) == DVM_OK, "run tier %d: %s", (int)tiers[k], dvm_last_error());
    bool same = y && dvm_tensor_numel(y) == 6;
    for (int i = 0; same && i < 6; i++) same = dvm_tensor_get_f64(y, i) == 2.0 * (6 + i) + 1;
    CHECK(same, "tier %d computes from the imported memory", (int)tiers[k]);
    dvm_tensor_destroy(y);
    dvm_model_destroy(mo);
  }
  dvm_graph_destroy(g);
  dvm_context_destroy(ctx);
  CHECK(deleted == 0, "no deleter call while the tensor lives");
  dvm_tensor_destroy(t);
  CHECK(deleted == 1 && deleted_arg == &m, "the deleter called once, with the managed tensor, on destroy");

  /* strides: row-major given, and any stride along a dim of size 1 */
  int64_t rm[2] = {3, 1};
  m = managed(a, F32, 2, shape, rm, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK, "row-major strides: %s", dvm_last_error());
  dvm_tensor_destroy(t);
  int64_t s3[3] = {1, 2, 1}, odd[3] = {999, 1, 7}; /* [1, 2, 1]: a size-1 dim's stride is free */
  m = managed(a, F32, 3, s3, odd, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK, "size-1 dims with odd strides: %s", dvm_last_error());
  dvm_tensor_destroy(t);

  /* other dtypes */
  uint8_t flags[3] = {1, 0, 1};
  int64_t three[1] = {3};
  m = managed(flags, (DLDataType){6 /* kDLBool */, 8, 1}, 1, three, NULL, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK && dvm_tensor_dtype(t) == DVM_BOOL && dvm_tensor_get_i64(t, 2) == 1,
        "bool: %s", dvm_last_error());
  dvm_tensor_destroy(t);
  int64_t longs[3] = {-5, 7, 1LL << 40};
  m = managed(longs, (DLDataType){kDLInt, 64, 1}, 1, three, NULL, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK && dvm_tensor_dtype(t) == DVM_I64 &&
            dvm_tensor_get_i64(t, 2) == (1LL << 40), "i64: %s", dvm_last_error());
  dvm_tensor_destroy(t);
  uint16_t halves[3] = {0x3c00, 0, 0};
  m = managed(halves, (DLDataType){kDLBfloat, 16, 1}, 1, three, NULL, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK && dvm_tensor_dtype(t) == DVM_BF16, "bf16: %s", dvm_last_error());
  dvm_tensor_destroy(t);
  m = managed(halves, (DLDataType){kDLFloat, 16, 1}, 1, three, NULL, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK && dvm_tensor_dtype(t) == DVM_F16 && dvm_tensor_get_f64(t, 0) == 1.0,
        "f16: %s", dvm_last_error());
  dvm_tensor_destroy(t);
  int64_t empty[2] = {3, 0}, estr[2] = {1, 1}; /* torch's strides for an empty [3, 0] */
  m = managed(a, F32, 2, empty, estr, 0);
  CHECK(dvm_tensor_from_dlpack(&m, &t) == DVM_OK && dvm_tensor_numel(t) == 0, "an empty tensor, any strides: %s",
        dvm_last_error());
  dvm_tensor_destroy(t);
  CHECK(deleted == 8, "one deleter call per imported tensor, eight of them (%d)", deleted);
}

static void test_refusals(void) {
  float a[6] = {0};
  int64_t shape[2] = {2, 3}, tr[2] = {1, 2};
  DLManagedTensor m = managed(a, F32, 2, shape, tr, 0);
  refused(&m, "not C-contiguous", "a transposed layout");
  m = managed(a, F32, 2, shape, NULL, 0);
  m.dl_tensor.device.device_type = kDLCUDA;
  refused(&m, "not the CPU", "a CUDA tensor");
  m = managed(a, (DLDataType){kDLComplex, 64, 1}, 2, shape, NULL, 0);
  refused(&m, "not one dvm has", "complex64");
  m = managed(a, (DLDataType){kDLInt, 128, 1}, 2, shape, NULL, 0);
  refused(&m, "not one dvm has", "i128");
  m = managed(a, (DLDataType){kDLFloat, 32, 2}, 2, shape, NULL, 0);
  refused(&m, "not one dvm has", "two lanes");
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  m = managed(a, F32, 9, nine, NULL, 0);
  refused(&m, "rank 9", "rank 9");
  int64_t neg[1] = {-2};
  m = managed(a, F32, 1, neg, NULL, 0);
  dvm_tensor *t = NULL;
  CHECK(dvm_tensor_from_dlpack(&m, &t) != DVM_OK && t == NULL, "a negative dim is refused");
  CHECK(dvm_tensor_from_dlpack(NULL, &t) == DVM_ERR_USAGE, "NULL is refused");
}

static void test_export(void) {
  dvm_tensor *t;
  int64_t shape[3] = {2, 3, 4};
  CHECK(dvm_tensor_create(DVM_I64, 3, shape, &t) == DVM_OK, "create");
  for (int i = 0; i < 24; i++) dvm_tensor_set_i64(t, i, 100 + i);
  void *data = dvm_tensor_data(t);
  DLManagedTensor *m = NULL;
  CHECK(dvm_tensor_to_dlpack(t, &m) == DVM_OK && m, "export: %s", dvm_last_error());
  if (!m) return;
  const DLTensor *d = &m->dl_tensor;
  CHECK(d->data == data && d->byte_offset == 0, "the same memory");
  CHECK(d->device.device_type == kDLCPU && d->device.device_id == 0, "CPU");
  CHECK(d->dtype.code == kDLInt && d->dtype.bits == 64 && d->dtype.lanes == 1, "i64");
  CHECK(d->ndim == 3 && d->shape[0] == 2 && d->shape[1] == 3 && d->shape[2] == 4, "shape");
  CHECK(d->strides && d->strides[0] == 12 && d->strides[1] == 4 && d->strides[2] == 1, "row-major strides");
  CHECK(((int64_t *)d->data)[23] == 123, "the values");
  /* back in: the same memory again, and destroying it runs the export's deleter */
  dvm_tensor *back = NULL;
  CHECK(dvm_tensor_from_dlpack(m, &back) == DVM_OK && dvm_tensor_data(back) == data, "round trip: %s",
        dvm_last_error());
  CHECK(dvm_tensor_get_i64(back, 5) == 105, "round trip values");
  dvm_tensor_destroy(back); /* the export's deleter: t is destroyed too (ASan: no leak) */

  dvm_tensor *b;
  CHECK(dvm_tensor_create(DVM_BOOL, 1, shape, &b) == DVM_OK && dvm_tensor_to_dlpack(b, &m) == DVM_OK, "bool export");
  CHECK(m->dl_tensor.dtype.code == 6 && m->dl_tensor.dtype.bits == 8, "bool as kDLBool, 8 bits");
  m->deleter(m); /* a consumer done with it */
  CHECK(dvm_tensor_to_dlpack(NULL, &m) == DVM_ERR_USAGE, "NULL is refused");
}

int main(void) {
  test_import();
  test_refusals();
  test_export();
  return CHECK_SUMMARY();
}
