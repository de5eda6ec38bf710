/* tests/unit/test_fusion.c — kernel keys depend on what code generation depends on.
 *
 * Same keys: renamed values, reordered independent lines, another symbol name, another
 * graph around the same kernel, a default attribute written out. Different keys: an op,
 * a dtype, a constant dim, a broadcast, an attribute, an epilogue member. And the
 * partition of a graph is a function of its symbolic shapes only: the symbolic dims a
 * kernel takes as parameters are listed, and no constant from a binding appears. */
#include <stdio.h>
#include <string.h>

#include "fusion/fusion.h"

#include "check.h"

typedef struct Keys {
  int n;
  uint8_t key[8][16];
  char kinds[64];
} Keys;

/* Partition `text`; its kernels' keys in execution order. */
static Keys keys(const char *text) {
  Keys k = {0};
  Err err = {0};
  Graph *g = ir_parse(text, strlen(text), "t.dvm", &err);
  if (!g) {
    printf("parse failed: %s\n", err.msg);
    k.n = -1;
    return k;
  }
  Partition *p = fu_partition(g, &err);
  for (uint32_t i = 0; p && i < p->kernels.n && i < 8; i++) {
    memcpy(k.key[i], p->kernels.v[i].key, 16);
    strcat(k.kinds, fu_kind_name(p->kernels.v[i].kind));
    strcat(k.kinds, " ");
    k.n++;
  }
  fu_free(p);
  ir_graph_free(g);
  return k;
}

static bool same(const char *a, const char *b) {
  Keys x = keys(a), y = keys(b);
  return x.n > 0 && x.n == y.n && !memcmp(x.key, y.key, sizeof x.key[0] * (size_t)x.n);
}

#define HEAD "graph t\ninput x: f32[N, 64]\nparam a: f32[64]\n"

static const char *base = HEAD "m = mul(x, a)\ny = tanh(m)\noutput y\n";

static void test_same(void) {
  CHECK(same(base, HEAD "p = mul(x, a)\nq = tanh(p)\noutput q\n"), "renamed values");
  CHECK(same(base, "graph other\ninput x: f32[B, 64]\nparam a: f32[64]\nm = mul(x, a)\n"
                   "y = tanh(m)\noutput y\n"),
        "another graph name and symbol name");
  CHECK(same(base, "graph t\n# a comment\n\nparam a: f32[64]\ninput x: f32[N, 64]\n"
                   "m = mul(x, a)\ny = tanh(m)\noutput y\n"),
        "declarations reordered, comments");
  CHECK(same("graph t\ninput x: f32[N, 8]\ny = softmax(x)\noutput y\n",
             "graph t\ninput x: f32[N, 8]\ny = softmax(x, axis=1)\noutput y\n"),
        "softmax's default axis written out, and as a positive axis");
  CHECK(same("graph t\ninput x: f32[N, 8]\ny = reduce_sum(x, axes=[1])\noutput y\n",
             "graph t\ninput x: f32[N, 8]\ny = reduce_sum(x, axes=[-1], keepdims=0)\noutput y\n"),
        "negative axis and default keepdims");
  /* the same kernel inside two graphs: W3's layernorm, and a layernorm that a matmul and
     an add read (so it is written once, not a prologue) */
  Keys a = keys("graph a\ninput x: f32[N, 16]\nparam g: f32[16]\nparam b: f32[16]\n"
                "y = layernorm(x, g, b)\noutput y\n");
  Keys b = keys("graph b\ninput x: f32[N, 16]\nparam g: f32[16]\nparam b: f32[16]\n"
                "param w: f32[16, 16]\nn = layernorm(x, g, b)\nh = matmul(n, w)\n"
                "y = add(h, n)\noutput y\n");
  CHECK(a.n == 1 && b.n == 2 && !memcmp(a.key[0], b.key[0], 16),
        "one layernorm kernel, one key, in two graphs");
  /* W5's first kernel: a layernorm read only as a matmul's a is that kernel's prologue */
  Keys pr = keys("graph b\ninput x: f32[N, 16]\nparam g: f32[16]\nparam b: f32[16]\n"
                 "param w: f32[16, 16]\nn = layernorm(x, g, b)\nh = matmul(n, w)\n"
                 "y = add(h, x)\noutput y\n");
  CHECK(pr.n == 1 && memcmp(a.key[0], pr.key[0], 16), "a layernorm prologue: one mix kernel");
  /* N deduced to be 64 (an add with a [64] input) gives the kernel of the written-out 64 */
  Keys d = keys("graph t\ninput x: f32[N]\ninput c: f32[64]\ny = add(x, c)\nz = exp(y)\noutput z\n");
  Keys e = keys("graph t\ninput x: f32[64]\ninput c: f32[64]\ny = add(x, c)\nz = exp(y)\noutput z\n");
  CHECK(d.n == 1 && e.n == 1 && !memcmp(d.key[0], e.key[0], 16),
        "a symbol bound to 64 by deduction keys like the constant 64");
  Keys q = keys("graph t\ninput x: f32[T, 8]\nparam w1: f32[8, 8]\nparam w2: f32[8, 8]\n"
                "a = matmul(x, w1)\nb = matmul(x, w2)\noutput a, b\n");
  CHECK(q.n == 2 && !memcmp(q.key[0], q.key[1], 16), "two identical projections share a key");
}

static void test_different(void) {
  CHECK(!same(base, HEAD "m = mul(x, a)\ny = sigmoid(m)\noutput y\n"), "an op");
  CHECK(!same(base, "graph t\ninput x: f16[N, 64]\nparam a: f16[64]\nm = mul(x, a)\n"
                    "y = tanh(m)\noutput y\n"),
        "a dtype");
  CHECK(!same(base, "graph t\ninput x: f32[N, 65]\nparam a: f32[65]\nm = mul(x, a)\n"
                    "y = tanh(m)\noutput y\n"),
        "a constant dim");
  CHECK(!same(base, "graph t\ninput x: f32[N, 64]\nparam a: f32[N, 64]\nm = mul(x, a)\n"
                    "y = tanh(m)\noutput y\n"),
        "a broadcast (a is [N, 64], not [64])");
  CHECK(!same(base, "graph t\ninput x: f32[N, 64]\nparam a: f32[1, 64]\nm = mul(x, a)\n"
                    "y = tanh(m)\noutput y\n"),
        "a broadcast rank ([1, 64] vs [64])");
  CHECK(!same("graph t\ninput x: f32[N, 8]\ny = softmax(x, axis=0)\noutput y\n",
              "graph t\ninput x: f32[N, 8]\ny = softmax(x, axis=1)\noutput y\n"),
        "an axis");
  CHECK(!same("graph t\ninput x: f32[N, 8]\nparam g: f32[8]\ny = rmsnorm(x, g, eps=1e-6)\noutput y\n",
              "graph t\ninput x: f32[N, 8]\nparam g: f32[8]\ny = rmsnorm(x, g, eps=1e-5)\noutput y\n"),
        "an epsilon");
  CHECK(!same(HEAD "m = mul(x, 2.0)\noutput m\n", HEAD "m = mul(x, 3.0)\noutput m\n"),
        "a literal constant");
  CHECK(!same("graph t\ninput x: f32[N, 8]\nparam w: f32[8, 8]\ny = matmul(x, w)\noutput y\n",
              "graph t\ninput x: f32[N, 8]\nparam w: f32[8, 8]\nh = matmul(x, w)\ny = relu(h)\n"
              "output y\n"),
        "an epilogue member");
  CHECK(!same("graph t\ninput x: f32[N, M]\ny = neg(x)\noutput y\n",
              "graph t\ninput x: f32[N, N]\ny = neg(x)\noutput y\n"),
        "two symbolic dims vs one dim used twice");
}

static void test_params(void) {
  Err err = {0};
  const char *t = "graph t\ninput x: f32[N, S, 64]\nparam w: f32[64, 32]\nf = reshape(x, shape=[-1, 64])\n"
                  "h = matmul(f, w)\ny = relu(h)\noutput y\n";
  Graph *g = ir_parse(t, strlen(t), "t.dvm", &err);
  Partition *p = g ? fu_partition(g, &err) : NULL;
  CHECK(p && p->kernels.n == 1, "reshape + matmul + relu is one mix kernel");
  if (p && p->kernels.n == 1) {
    const Kernel *k = &p->kernels.v[0];
    char names[128] = "";
    for (uint32_t i = 0; i < k->ndims; i++) {
      char s[32];
      strcat(names, ir_dim_str(g, p->dims.v[k->dims + i], s, sizeof s));
      strcat(names, ";");
    }
    CHECK(!strcmp(names, "N;S;N*S;"), "the kernel's symbolic dims are N, S, N*S: got %s", names);
    CHECK(k->ninputs == 2 && k->noutputs == 1, "inputs x, w; output y");
  }
  fu_free(p);
  ir_graph_free(g);
}

int main(void) {
  test_same();
  test_different();
  test_params();
  return CHECK_SUMMARY();
}
