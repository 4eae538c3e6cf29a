/* docker.h - what the tests that use the real Docker Engine share: the
 * local test image, the repository's files, removing a run's containers,
 * and a stand-in panel for a daemon on the bus.
 *
 *   ck_assert_int_eq(h_image_build(), 0);       berth-test-busybox:1
 *   ...
 *   h_docker_rm_labelled("berth.node=<id>");      at teardown
 */
#ifndef BERTH_TESTS_HARNESS_DOCKER_H
#define BERTH_TESTS_HARNESS_DOCKER_H

#include <stddef.h>

#define H_TEST_IMAGE "berth-test-busybox:1"

struct bus;
struct bus_msg;

/* Writes the path of rel (relative to the repository root, found from
 * where h_bin() found build/bin) into dst. */
void h_repo_path(char *dst, size_t size, const char *rel);

/* Builds H_TEST_IMAGE with tests/harness/image.sh when it is missing.
 * Returns 0, or the script's failure (its output is printed). */
int h_image_build(void);

/* Removes (forcibly) every container carrying label ("key=value"). */
void h_docker_rm_labelled(const char *label);

/* Plays the panel's side of a daemon's life on b: answers
 * node.register.* (heartbeat interval 1 s) and node.sync.* with
 * sync(m, ud) (NULL: an empty desired state). Returns 0 or a berth
 * code. */
int h_fake_panel(struct bus *b, int (*sync)(struct bus_msg *m, void *ud),
                 void *ud);

#endif
