/*
 * Task metadata (cio_task_get_info): the id, the parent, the spawn site the
 * spawn macros record (file:line of the call), the code address recorded
 * when the functions are called directly, the state, the start time, the
 * switch count, and the CPU time counted in debug mode.
 */
#include "test.h"

#include <math.h>

static void *return_at_once(void *arg) {
    return arg;
}

static void *sleep_a_little(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(spawn_macro_records_file_and_line_of_the_call) {
    cio_loop *loop = test_loop();
    cio_task *t;
    int line = __LINE__ + 1;
    CHECK_OK(cio_spawn(loop, return_at_once, NULL, &t));
    cio_task_info info;
    CHECK_OK(cio_task_get_info(t, &info));
    char want[64];
    snprintf(want, sizeof want, "test_task_info.c:%d", line);
    CHECK(info.spawn_site != NULL);
    size_t n = strlen(info.spawn_site), w = strlen(want);
    CHECK(n >= w && strcmp(info.spawn_site + n - w, want) == 0);
    CHECK(info.spawn_pc == NULL);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK_OK(cio_loop_free(loop));
}

TEST(spawn_with_and_task_group_spawn_record_their_sites) {
    cio_loop *loop = test_loop();
    cio_task *t;
    cio_task_options opts = {.name = "named"};
    int line = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, return_at_once, NULL, &opts, &t));
    cio_task_info info;
    CHECK_OK(cio_task_get_info(t, &info));
    char want[64];
    snprintf(want, sizeof want, "test_task_info.c:%d", line);
    CHECK(strstr(info.spawn_site, want) != NULL);
    CHECK_STR(info.name, "named");
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    /* An explicit site is kept as given. */
    CHECK_OK(cio_spawn_at("my-site", loop, return_at_once, NULL, NULL, &t));
    CHECK_OK(cio_task_get_info(t, &info));
    CHECK_STR(info.spawn_site, "my-site");
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK_OK(cio_loop_free(loop));
}

static cio_task *group_child;
static int group_line;

static void *spawn_in_a_group(void *arg) {
    (void)arg;
    cio_task_group *g;
    CHECK_OK(cio_task_group_enter(&g));
    group_line = __LINE__ + 1;
    CHECK_OK(cio_task_group_spawn(g, return_at_once, NULL, &group_child));
    CHECK_OK(cio_task_group_exit(g, 0));
    CHECK_OK(cio_task_group_free(g));
    return NULL;
}

TEST(task_group_spawn_records_its_site_and_parent) {
    cio_loop *loop = test_loop();
    cio_task *parent;
    CHECK_OK(cio_spawn(loop, spawn_in_a_group, NULL, &parent));
    CHECK_OK(cio_run_until_complete(loop, parent, NULL));
    cio_task_info info, pinfo;
    CHECK_OK(cio_task_get_info(group_child, &info));
    CHECK_OK(cio_task_get_info(parent, &pinfo));
    char want[64];
    snprintf(want, sizeof want, "test_task_info.c:%d", group_line);
    CHECK(strstr(info.spawn_site, want) != NULL);
    CHECK_EQ(info.parent_id, pinfo.id);
    CHECK_EQ(pinfo.parent_id, 0);
    CHECK_EQ(info.state, CIO_TASK_DONE);
    cio_future_unref(group_child);
    cio_future_unref(parent);
    CHECK_OK(cio_loop_free(loop));
}

TEST(functions_called_directly_record_the_callers_address) {
    cio_loop *loop = test_loop();
    cio_task *a, *b;
    CHECK_OK((cio_spawn)(loop, return_at_once, NULL, &a));
    CHECK_OK((cio_spawn_with)(loop, return_at_once, NULL, NULL, &b));
    cio_task_info ia, ib;
    CHECK_OK(cio_task_get_info(a, &ia));
    CHECK_OK(cio_task_get_info(b, &ib));
    CHECK(ia.spawn_site == NULL && ia.spawn_pc != NULL);
    CHECK(ib.spawn_site == NULL && ib.spawn_pc != NULL);
    /* The address lies in this test's code, after the start of the test
     * function and within a few KiB of it. */
    uintptr_t fn = (uintptr_t)&test_functions_called_directly_record_the_callers_address;
    CHECK((uintptr_t)ia.spawn_pc > fn && (uintptr_t)ia.spawn_pc < fn + 4096);
    CHECK_OK(cio_run_until_complete(loop, b, NULL));
    cio_future_unref(b);
    CHECK_OK(cio_spawn_at(NULL, loop, return_at_once, NULL, NULL, &b));
    CHECK_OK(cio_task_get_info(b, &ib));
    CHECK(ib.spawn_site == NULL && (uintptr_t)ib.spawn_pc > fn &&
          (uintptr_t)ib.spawn_pc < fn + 4096);
    CHECK_OK(cio_run_until_complete(loop, a, NULL));
    CHECK_OK(cio_run_until_complete(loop, b, NULL));
    cio_future_unref(a);
    cio_future_unref(b);
    CHECK_OK(cio_loop_free(loop));
}

static uint64_t seen_parent;
static cio_task_state seen_state;

static void *spawn_a_child(void *arg) {
    cio_task **child = arg;
    cio_task_info me;
    CHECK_OK(cio_task_get_info(cio_current_task(), &me));
    seen_state = me.state;
    CHECK_OK(cio_spawn(cio_running_loop(), sleep_a_little, NULL, child));
    cio_task_info info;
    CHECK_OK(cio_task_get_info(*child, &info));
    seen_parent = info.parent_id;
    CHECK_EQ(info.state, CIO_TASK_SCHEDULED);
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_task_get_info(*child, &info));
    CHECK_EQ(info.state, CIO_TASK_WAITING);
    return NULL;
}

TEST(ids_parents_and_states) {
    cio_loop *loop = test_loop();
    cio_task *parent, *child = NULL;
    CHECK_OK(cio_spawn(loop, spawn_a_child, &child, &parent));
    cio_task_info pinfo;
    CHECK_OK(cio_task_get_info(parent, &pinfo));
    CHECK_EQ(pinfo.state, CIO_TASK_SCHEDULED);
    CHECK(pinfo.id >= 1);
    CHECK_OK(cio_run_until_complete(loop, parent, NULL));
    CHECK_EQ(seen_state, CIO_TASK_RUNNING);
    cio_task_info cinfo;
    CHECK_OK(cio_task_get_info(child, &cinfo));
    CHECK_EQ(seen_parent, pinfo.id);
    CHECK_EQ(cinfo.parent_id, pinfo.id);
    CHECK(cinfo.id > pinfo.id);
    CHECK_OK(cio_run_until_complete(loop, child, NULL));
    CHECK_OK(cio_task_get_info(child, &cinfo));
    CHECK_EQ(cinfo.state, CIO_TASK_DONE);
    /* Ids are never reused, even though the task objects are. */
    cio_task *again;
    CHECK_OK(cio_spawn(loop, return_at_once, NULL, &again));
    cio_task_info ainfo;
    CHECK_OK(cio_task_get_info(again, &ainfo));
    CHECK(ainfo.id > cinfo.id);
    CHECK_OK(cio_run_until_complete(loop, again, NULL));
    cio_future_unref(again);
    cio_future_unref(child);
    cio_future_unref(parent);
    CHECK_OK(cio_loop_free(loop));
}

TEST(switches_count_each_resumption) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, sleep_a_little, NULL, &t));
    cio_task_info info;
    CHECK_OK(cio_task_get_info(t, &info));
    CHECK_EQ(info.switches, 0);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK_OK(cio_task_get_info(t, &info));
    /* The first step and one resumption after each of three sleeps. */
    CHECK_EQ(info.switches, 4);
    cio_future_unref(t);
    CHECK_OK(cio_loop_free(loop));
}

static void *spin_then_return(void *arg) {
    (void)arg;
    int64_t until = cio_loop_time_ns(cio_running_loop()) + 20 * 1000 * 1000;
    volatile uint64_t x = 0;
    while (cio_loop_time_ns(cio_running_loop()) < until) x++;
    CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(cpu_time_is_counted_in_debug_mode_only) {
    cio_loop *loop = test_loop();
    cio_task *t;
    CHECK_OK(cio_spawn(loop, spin_then_return, NULL, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_task_info info;
    CHECK_OK(cio_task_get_info(t, &info));
    CHECK(info.cpu_time == -1.0);
    cio_future_unref(t);
    CHECK_OK(cio_loop_set_debug(loop, 1));
    CHECK_OK(cio_spawn(loop, spin_then_return, NULL, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    CHECK_OK(cio_task_get_info(t, &info));
    /* It spun for 20 ms of wall time: on a machine this busy it got at
     * least some CPU time, and never more than the test ran. */
    CHECK(info.cpu_time > 0.0);
    CHECK(info.cpu_time < 60.0);
    cio_future_unref(t);
    CHECK_OK(cio_loop_free(loop));
}

static void *spawn_later(void *arg) {
    cio_task **out = arg;
    CHECK_OK(cio_sleep(0.05));
    CHECK_OK(cio_spawn(cio_running_loop(), return_at_once, NULL, out));
    return NULL;
}

TEST(start_time_is_the_loop_time_at_spawn) {
    cio_loop_options opts = {.virtual_clock = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    double t0 = cio_loop_time(loop);
    cio_task *first, *later = NULL;
    CHECK_OK(cio_spawn(loop, spawn_later, &later, &first));
    cio_task_info info;
    CHECK_OK(cio_task_get_info(first, &info));
    CHECK(info.started == t0);
    CHECK_OK(cio_run_until_complete(loop, first, NULL));
    CHECK_OK(cio_task_get_info(later, &info));
    /* The virtual clock jumped to the sleep's deadline exactly. */
    CHECK_NEAR(info.started, t0 + 0.05, 1e-9);
    CHECK_OK(cio_run_until_complete(loop, later, NULL));
    cio_future_unref(later);
    cio_future_unref(first);
    CHECK_OK(cio_loop_free(loop));
}

TEST(get_info_rejects_bad_input) {
    cio_loop *loop = test_loop();
    cio_task_info info;
    CHECK_ERR(cio_task_get_info(NULL, &info), -EINVAL);
    cio_future *f;
    CHECK_OK(cio_future_new(loop, &f));
    CHECK_ERR(cio_task_get_info(f, &info), -EINVAL);
    cio_task *t;
    CHECK_OK(cio_spawn(loop, return_at_once, NULL, &t));
    CHECK_ERR(cio_task_get_info(t, NULL), -EINVAL);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    cio_future_unref(f);
    CHECK_OK(cio_loop_free(loop));
}
