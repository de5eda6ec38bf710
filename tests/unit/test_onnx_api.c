/* tests/unit/test_onnx_api.c — dvm_model_load_onnx: an ONNX model built here with the
 * protobuf-c code generated from Debian's onnx.proto (y = Relu(x·W + b), x: [N, 3] with
 * dim_param N, W and b initializers) is loaded, compiled and bound in one call; the model
 * owns the initializers (the graph is gone), runs at two batch sizes with one compile
 * each, and agrees with the product computed here. A missing file is a clean error. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dvm.h"
#include "check.h"
#include "onnx.pb-c.h"

static const float W[3][2] = {{0.5f, -1.0f}, {2.0f, 0.25f}, {-0.75f, 1.5f}};
static const float B[2] = {0.125f, -0.5f};

/* A ValueInfo: float tensor of the given dims (a NULL name is a dim_param "N"). */
static Onnx__ValueInfoProto *value_info(const char *name, int rank, const int64_t *dims) {
  Onnx__ValueInfoProto *vi = calloc(1, sizeof *vi);
  Onnx__TypeProto *tp = calloc(1, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = calloc(1, sizeof *tt);
  Onnx__TensorShapeProto *sh = calloc(1, sizeof *sh);
  onnx__value_info_proto__init(vi), onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt), onnx__tensor_shape_proto__init(sh);
  sh->n_dim = (size_t)rank;
  sh->dim = calloc((size_t)rank, sizeof *sh->dim);
  for (int i = 0; i < rank; i++) {
    Onnx__TensorShapeProto__Dimension *d = calloc(1, sizeof *d);
    onnx__tensor_shape_proto__dimension__init(d);
    if (dims[i] < 0) d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, d->dim_param = "N";
    else d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d->dim_value = dims[i];
    sh->dim[i] = d;
  }
  tt->has_elem_type = 1, tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, tt->shape = sh;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
  vi->name = (char *)name, vi->type = tp;
  return vi;
}

static void value_info_free(Onnx__ValueInfoProto *vi) {
  Onnx__TensorShapeProto *sh = vi->type->tensor_type->shape;
  for (size_t i = 0; i < sh->n_dim; i++) free(sh->dim[i]);
  free(sh->dim), free(sh), free(vi->type->tensor_type), free(vi->type), free(vi);
}

static Onnx__TensorProto *initializer(const char *name, int rank, int64_t *dims, const float *data) {
  Onnx__TensorProto *t = calloc(1, sizeof *t);
  onnx__tensor_proto__init(t);
  t->name = (char *)name, t->n_dims = (size_t)rank, t->dims = dims;
  t->has_data_type = 1, t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  t->n_float_data = (size_t)n, t->float_data = (float *)data;
  return t;
}

static Onnx__NodeProto *node(const char *op, int nin, char **in, char *out) {
  Onnx__NodeProto *n = calloc(1, sizeof *n);
  onnx__node_proto__init(n);
  n->op_type = (char *)op, n->n_input = (size_t)nin, n->input = in, n->n_output = 1;
  n->output = malloc(sizeof *n->output), n->output[0] = out;
  return n;
}

/* Serialize the model to path; false on failure. */
static bool write_model(const char *path) {
  int64_t xd[2] = {-1, 3}, yd[2] = {-1, 2}, wd[2] = {3, 2}, bd[1] = {2};
  char *mm_in[2] = {"x", "W"}, *add_in[2] = {"h", "b"}, *relu_in[1] = {"a"};
  Onnx__NodeProto *nodes[3] = {node("MatMul", 2, mm_in, "h"), node("Add", 2, add_in, "a"),
                               node("Relu", 1, relu_in, "y")};
  Onnx__TensorProto *inits[2] = {initializer("W", 2, wd, &W[0][0]), initializer("b", 1, bd, B)};
  Onnx__ValueInfoProto *ins[1] = {value_info("x", 2, xd)}, *outs[1] = {value_info("y", 2, yd)};
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = "tiny", gp.n_node = 3, gp.node = nodes, gp.n_initializer = 2, gp.initializer = inits;
  gp.n_input = 1, gp.input = ins, gp.n_output = 1, gp.output = outs;
  Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT, *ops[1] = {&op};
  op.domain = "", op.has_version = 1, op.version = 13;
  Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
  mp.has_ir_version = 1, mp.ir_version = 8, mp.n_opset_import = 1, mp.opset_import = ops, mp.graph = &gp;
  size_t len = onnx__model_proto__get_packed_size(&mp);
  uint8_t *buf = malloc(len);
  onnx__model_proto__pack(&mp, buf);
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(buf, 1, len, f) == len;
  if (f) ok &= fclose(f) == 0;
  free(buf);
  for (int i = 0; i < 3; i++) free(nodes[i]->output), free(nodes[i]);
  for (int i = 0; i < 2; i++) free(inits[i]);
  value_info_free(ins[0]), value_info_free(outs[0]);
  return ok;
}

/* Worst |y - relu(x W + b)| over a run at batch n. */
static double run_at(dvm_model *m, int64_t n) {
  dvm_tensor *x, *y = NULL;
  if (dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, 3}, &x)) return INFINITY;
  dvm_tensor_fill_random(x, (uint64_t)n);
  const char *names[] = {"x"};
  double worst = INFINITY;
  if (!dvm_model_run(m, 1, names, &x, &y) && dvm_tensor_rank(y) == 2 && dvm_tensor_shape(y)[0] == n &&
      dvm_tensor_shape(y)[1] == 2) {
    worst = 0;
    for (int64_t i = 0; i < n; i++)
      for (int j = 0; j < 2; j++) {
        double want = B[j];
        for (int k = 0; k < 3; k++) want += dvm_tensor_get_f64(x, i * 3 + k) * W[k][j];
        want = want > 0 ? want : 0;
        double e = fabs(dvm_tensor_get_f64(y, i * 2 + j) - want);
        worst = e > worst ? e : worst;
      }
  }
  dvm_tensor_destroy(x), dvm_tensor_destroy(y);
  return worst;
}

int main(void) {
  /* this test counts compiles and tier-up in this process: kernels an earlier process
     left in the object cache on disk would be loads instead */
  setenv("DVM_CACHE_DIR", "off", 1);
  char path[] = "/tmp/dvm_test_onnx_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0 && close(fd) == 0 && write_model(path), "could not write the model to %s", path);
  dvm_context *ctx;
  CHECK(dvm_context_create(&ctx) == DVM_OK, "%s", dvm_last_error());
  dvm_compile_options opt = {.tier = DVM_TIER_LLVM};
  dvm_model *m = NULL;
  CHECK(dvm_model_load_onnx(ctx, path, &opt, &m) == DVM_OK, "load: %s", dvm_last_error());
  if (m) {
    CHECK(dvm_model_num_inputs(m) == 1 && !strcmp(dvm_model_input_name(m, 0), "x"), "one input, x");
    double e1 = run_at(m, 1), e2 = run_at(m, 37);
    CHECK(e1 <= 1e-5 && e2 <= 1e-5, "relu(x W + b) at N=1 and N=37: errors %g, %g", e1, e2);
    dvm_stats s;
    dvm_model_stats(m, &s);
    CHECK(s.llvm_compiles == s.kernels && s.native_kernels == s.kernels,
          "compiled once for both batch sizes: %lld compiles, %lld kernels", (long long)s.llvm_compiles,
          (long long)s.kernels);
    dvm_model_destroy(m); /* frees the initializers it took over (ASan checks) */
  }
  dvm_model *bad = (dvm_model *)1;
  CHECK(dvm_model_load_onnx(ctx, "/nonexistent/model.onnx", NULL, &bad) != DVM_OK && !bad &&
            strstr(dvm_last_error(), "model.onnx"),
        "a missing file: %s", dvm_last_error());
  dvm_context_destroy(ctx);
  unlink(path);
  return CHECK_SUMMARY();
}
