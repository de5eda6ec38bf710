/* tests/unit/check.h — the one assertion of the C unit tests: CHECK(cond, fmt, ...) counts
 * a pass or prints the failure with its file and line; main() ends with CHECK_SUMMARY(),
 * which prints "N passed, M failed" (the line ctest's log is read for) and gives the
 * exit status. */
#ifndef DVM_TEST_CHECK_H
#define DVM_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                   \
  do {                                                                                     \
    if (cond) {                                                                            \
      passed++;                                                                            \
    } else {                                                                               \
      failed++;                                                                            \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                              \
      printf(__VA_ARGS__);                                                                 \
      printf("\n");                                                                        \
    }                                                                                      \
  } while (0)

#define CHECK_SUMMARY() (printf("%d passed, %d failed\n", passed, failed), failed != 0)

#endif
