/* tests/unit/test_exit.c — a process that exits with a context alive and a background
 * compile in flight exits cleanly (jit/llvm.c "Exit"): LLVM's static objects are destroyed
 * at exit, and a compile thread still running then aborted or crashed the process.
 *
 * The parent never touches dvm: each child, forked from a process with no dvm state,
 * compiles one model to the end, then queues another's compiles and exits (from main,
 * destroying nothing) while they run. Every child must exit with status 0. A crash is a
 * race, so a run with the bug can pass; 24 children make that unlikely (without the
 * handler, 5-9 of 24 crashed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dvm.h"

/* What a child leaves alive at exit, on purpose: kept reachable from here, so that
 * LeakSanitizer (the ASan build) does not count it as leaked. */
static void *alive[32];
static int nalive;

static void *keep(void *p) { return nalive < 32 ? (alive[nalive++] = p) : p; }

/* W5's transformer MLP at width H (constant dims: a new H is a new kernel key) */
static dvm_model *mlp(dvm_context *ctx, int64_t H) {
  char text[1024];
  snprintf(text, sizeof text,
           "graph exit\n"
           "input x: f32[N, %lld]\n"
           "param gamma: f32[%lld]\n param beta: f32[%lld]\n param w1: f32[%lld, %lld]\n"
           "param b1: f32[%lld]\n param w2: f32[%lld, %lld]\n param b2: f32[%lld]\n"
           "n = layernorm(x, gamma, beta, axis=-1, eps=1e-5)\n h = matmul(n, w1)\n hb = add(h, b1)\n"
           "g = gelu(hb)\n o = matmul(g, w2)\n ob = add(o, b2)\n y = add(x, ob)\n"
           "output y\n",
           (long long)H, (long long)H, (long long)H, (long long)H, (long long)(4 * H), (long long)(4 * H),
           (long long)(4 * H), (long long)H, (long long)H);
  dvm_graph *g;
  dvm_model *m = NULL;
  dvm_compile_options opt = {.tier = DVM_TIER_AUTO};
  if (dvm_graph_parse(ctx, text, strlen(text), "exit.dvm", &g) || dvm_model_compile(ctx, g, &opt, &m)) {
    fprintf(stderr, "%s\n", dvm_last_error());
    return NULL;
  }
  const char *pn[] = {"gamma", "beta", "w1", "b1", "w2", "b2"};
  const int64_t ps[][2] = {{H, 0}, {H, 0}, {H, 4 * H}, {4 * H, 0}, {4 * H, H}, {H, 0}};
  for (int i = 0; i < 6; i++) {
    dvm_tensor *t;
    dvm_tensor_create(DVM_F32, ps[i][1] ? 2 : 1, ps[i], &t);
    keep(t);
    dvm_tensor_fill_random(t, (uint64_t)i + 1);
    if (dvm_model_set_param(m, pn[i], t)) return NULL;
  }
  dvm_tensor *x, *out[1] = {0};
  dvm_tensor_create(DVM_F32, 2, (const int64_t[]){1, H}, &x);
  dvm_tensor_fill_random(x, 9);
  if (dvm_model_run(m, 1, (const char *[]){"x"}, &x, out)) return NULL; /* queues the compiles */
  keep(g), keep(x), keep(out[0]);
  return keep(m);
}

/* One process: the MLP at H = 512 with its compiles queued or running when the process
 * exits, at a point that moves with i. Odd i first compile the MLP at H = 128 to the end,
 * so the exit comes during a later compile; even i exit during the process's first. */
static int child(int i) {
  dvm_context *ctx;
  dvm_model *a, *b;
  if (dvm_context_create(&ctx)) return 2;
  keep(ctx);
  if (i % 2) {
    if (!(a = mlp(ctx, 128))) return 2;
    dvm_model_wait(a);
  }
  if (!(b = mlp(ctx, 512))) return 3;
  usleep((useconds_t)(i / 2 % 8) * 15000);
  return 0; /* the models and the context stay alive */
}

int main(void) {
  int ok = 0, n = 24;
  for (int i = 0; i < n; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) exit(child(i));
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
      CHECK(0, "fork or wait failed");
      break;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    else if (WIFSIGNALED(st)) printf("child %d: killed by signal %d\n", i, WTERMSIG(st));
    else printf("child %d: exit status %d\n", i, WEXITSTATUS(st));
  }
  CHECK(ok == n, "%d of %d processes exited cleanly with a compile in flight", ok, n);
  return CHECK_SUMMARY();
}
