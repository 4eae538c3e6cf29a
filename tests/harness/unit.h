/* unit.h - the main() shared by every check-based test binary.
 *
 * A test file defines one `static Suite *make_suite(void)` and ends with
 * UNIT_MAIN(make_suite). CK_FORK follows check's defaults (fork per test),
 * so a crash fails one test, not the run.
 *
 * UNIT_MAIN_NOFORK(make_suite) runs every test in the one process instead,
 * in order, for suites whose tests share a server and build on each other
 * (the panel's integration tests).
 */
#ifndef BERTH_TESTS_UNIT_H
#define BERTH_TESTS_UNIT_H

#include <check.h>
#include <stdlib.h>

#define UNIT_MAIN(make_suite)                                                  \
    int main(void)                                                             \
    {                                                                          \
        SRunner *sr = srunner_create(make_suite());                            \
        int failed;                                                            \
        srunner_run_all(sr, CK_NORMAL);                                        \
        failed = srunner_ntests_failed(sr);                                    \
        srunner_free(sr);                                                      \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                      \
    }

#define UNIT_MAIN_NOFORK(make_suite)                                           \
    int main(void)                                                             \
    {                                                                          \
        SRunner *sr = srunner_create(make_suite());                            \
        int failed;                                                            \
        srunner_set_fork_status(sr, CK_NOFORK);                                \
        srunner_run_all(sr, CK_NORMAL);                                        \
        failed = srunner_ntests_failed(sr);                                    \
        srunner_free(sr);                                                      \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                      \
    }

#endif
